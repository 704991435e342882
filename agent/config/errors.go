package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one configuration mistake at a place in a file.
type Error struct {
	File      string
	Line, Col int    // 1-based; 0 when the place is the whole file
	Key       string // the path the user wrote, e.g. devices[0] (press-02).tags[3] "pressure".address
	Msg       string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in a configuration and its tag-map files,
// in file and line order. Load returns it when any were found.
type Errors []*Error

// maxShown bounds how many errors the message lists: a generated tag map
// with one systematic mistake would otherwise print it a hundred thousand
// times. All of them stay in the slice.
const maxShown = 50

func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i == maxShown {
			fmt.Fprintf(&b, "\n… and %d more errors", len(es)-maxShown)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// sort orders the errors by line within each file, files in the order
// their first error was found (the configuration, then tag maps as the
// devices name them).
func (es Errors) sort() {
	rank := map[string]int{}
	for _, e := range es {
		if _, ok := rank[e.File]; !ok {
			rank[e.File] = len(rank)
		}
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(rank[a.File], rank[b.File]), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}
