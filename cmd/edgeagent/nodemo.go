//go:build !demo

package main

import (
	"context"
	"errors"
	"io"
)

func cmdDemo(context.Context, []string, io.Writer) error {
	return errors.New("this build has no demo (it carries no broker or PLC simulator); run it from the source tree with `make demo`")
}
