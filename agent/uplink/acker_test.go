package uplink

import (
	"slices"
	"testing"
)

func TestMergeAcks(t *testing.T) {
	for _, c := range []struct{ in, want []ackOp }{
		{[]ackOp{{0, 5}, {0, 9}, {0, 7}}, []ackOp{{0, 9}}},
		{[]ackOp{{10, 20}, {21, 30}, {25, 40}}, []ackOp{{10, 40}}},
		{[]ackOp{{10, 20}, {0, 5}, {22, 30}}, []ackOp{{10, 20}, {0, 5}, {22, 30}}},
		{[]ackOp{{10, 20}, {30, 40}}, []ackOp{{10, 20}, {30, 40}}},
		{nil, nil},
	} {
		if got := merge(slices.Clone(c.in)); !slices.Equal(got, c.want) {
			t.Errorf("merge(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
