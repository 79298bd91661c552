package main

import (
	"flag"
	"io"

	"github.com/doze-io/doze/codec"
)

// profileFlag registers the flags that give a product model and returns the
// function that loads it (nil model: none given). The profile package has
// not landed on this branch, so there is no -profile flag yet.
func profileFlag(*flag.FlagSet) func(stderr io.Writer) (codec.Model, error) {
	return func(io.Writer) (codec.Model, error) { return nil, nil }
}
