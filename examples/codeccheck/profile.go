package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/profile"
)

// Compile checks field mappings against the product (COD-3), command
// responses included.
var (
	_ codec.Model         = profile.CodecModel{}
	_ codec.ResponseModel = profile.CodecModel{}
)

// profileFlag registers -profile and returns the function that loads the
// product model it names (nil model when the flag is not given): a Profile
// zip, a Profile directory, or a newer single-file JSON model (.json).
// Loading warnings go to stderr; a profile with problems is an error.
func profileFlag(fs *flag.FlagSet) func(stderr io.Writer) (codec.Model, error) {
	path := fs.String("profile", "", "product model to check the codec against: Profile zip, Profile directory or JSON model (.json)")
	return func(stderr io.Writer) (codec.Model, error) {
		if *path == "" {
			return nil, nil
		}
		p, warnings, err := loadProduct(*path)
		for _, w := range warnings {
			fmt.Fprintf(stderr, "codeccheck: %s: warning: %s\n", *path, w)
		}
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", *path, err)
		}
		return p.CodecModel(), nil
	}
}

func loadProduct(path string) (*profile.Product, []profile.Problem, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	name := filepath.Base(path)
	switch {
	case st.IsDir():
		return profile.LoadDir(os.DirFS(path), name, nil)
	case strings.EqualFold(filepath.Ext(path), ".json"):
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, err
		}
		return profile.LoadModelJSON(data, nil)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return profile.LoadZip(f, st.Size(), name, nil)
}
