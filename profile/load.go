package profile

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// Options bounds what the loaders accept, so that a hostile archive (a zip
// bomb, a million entries) is refused before memory grows. The zero value
// (or nil) uses the defaults.
type Options struct {
	// MaxArchiveSize bounds the size of the zip file itself. 0 means 16 MiB.
	MaxArchiveSize int64
	// MaxEntries bounds the number of entries (files and folders) in an
	// archive or directory tree. 0 means 512.
	MaxEntries int
	// MaxEntrySize bounds the uncompressed size of one file. 0 means 1 MiB.
	MaxEntrySize int64
	// MaxTotalSize bounds the uncompressed size of all files together.
	// 0 means 8 MiB.
	MaxTotalSize int64
}

// Defaults of Options.
const (
	DefaultMaxArchiveSize = 16 << 20
	DefaultMaxEntries     = 512
	DefaultMaxEntrySize   = 1 << 20
	DefaultMaxTotalSize   = 8 << 20
)

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.MaxArchiveSize <= 0 {
		v.MaxArchiveSize = DefaultMaxArchiveSize
	}
	if v.MaxEntries <= 0 {
		v.MaxEntries = DefaultMaxEntries
	}
	if v.MaxEntrySize <= 0 {
		v.MaxEntrySize = DefaultMaxEntrySize
	}
	if v.MaxTotalSize <= 0 {
		v.MaxTotalSize = DefaultMaxTotalSize
	}
	return v
}

// Well-known paths inside a profile (PRF-1).
const (
	deviceFile  = "profile/devicetype-capability.json"
	displayFile = "profile/devicetype-display.json"
	serviceFile = "servicetype-capability.json"
)

// entry is one file of a profile tree.
type entry struct {
	name string
	data []byte
}

// LoadZip loads a Profile zip of size bytes read through r (PRF-1…PRF-6).
// name is the uploaded file name, checked against
// <deviceType>_<manufacturerId>_<model>.zip; "" skips that check.
//
// It returns the product and the warnings (naming conventions, a wrapping
// folder, ignored files). A profile with problems fails with a
// *ValidationError listing all of them (errors.Is ErrInvalid); an archive
// over a limit of opts fails with a *LimitError (errors.Is ErrTooLarge)
// before its contents are read. It is LoadZipContext without a deadline.
func LoadZip(r io.ReaderAt, size int64, name string, opts *Options) (*Product, []Problem, error) {
	return LoadZipContext(context.Background(), r, size, name, opts)
}

// LoadZipContext is LoadZip that stops when ctx is done (the uploading
// client went away), returning an error that wraps ctx.Err().
func LoadZipContext(ctx context.Context, r io.ReaderAt, size int64, name string, opts *Options) (*Product, []Problem, error) {
	o := opts.withDefaults()
	if size > o.MaxArchiveSize {
		return nil, nil, &LimitError{Limit: "MaxArchiveSize", Size: size, Max: o.MaxArchiveSize}
	}
	if n, ok := countEntries(r, size, o.MaxEntries); ok && n > o.MaxEntries {
		return nil, nil, &LimitError{Limit: "MaxEntries", Size: int64(n), Max: int64(o.MaxEntries)}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, nil, &ValidationError{Name: baseName(name), Problems: []Problem{{
			Code: CodeNotZip, File: baseName(name),
			Message: fmt.Sprintf("the file is not a zip archive (%v); compress the profile folder as .zip and upload that", err),
		}}}
	}
	if len(zr.File) > o.MaxEntries {
		return nil, nil, &LimitError{Limit: "MaxEntries", Size: int64(len(zr.File)), Max: int64(o.MaxEntries)}
	}
	// Refuse by declared sizes before decompressing anything.
	var total uint64
	for _, f := range zr.File {
		if f.UncompressedSize64 > uint64(o.MaxEntrySize) {
			return nil, nil, &LimitError{File: f.Name, Limit: "MaxEntrySize", Size: clampInt64(f.UncompressedSize64), Max: o.MaxEntrySize}
		}
		total += f.UncompressedSize64
		if total > uint64(o.MaxTotalSize) {
			return nil, nil, &LimitError{Limit: "MaxTotalSize", Size: clampInt64(total), Max: o.MaxTotalSize}
		}
	}
	var files []entry
	var streamed int64
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") || f.FileInfo().IsDir() {
			continue
		}
		data, err := readLimited(f, f.Name, &streamed, &o)
		if err != nil {
			var le *LimitError
			if errors.As(err, &le) {
				return nil, nil, err
			}
			msg := fmt.Sprintf("cannot read this entry (%v); re-create the zip", err)
			if errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrChecksum) {
				msg = fmt.Sprintf("this entry's data does not match its header (%d bytes declared, or a wrong checksum); the archive is corrupt or hostile, re-create it", f.UncompressedSize64)
			}
			return nil, nil, &ValidationError{Name: baseName(name), Problems: []Problem{{
				Code: CodeNotZip, File: f.Name, Message: msg,
			}}}
		}
		files = append(files, entry{name: strings.ReplaceAll(f.Name, "\\", "/"), data: data})
	}
	return loadTree(ctx, baseName(name), files)
}

// readLimited reads one zip entry, refusing it as soon as it streams past
// MaxEntrySize or the running total passes MaxTotalSize, whatever its
// header declared.
func readLimited(f *zip.File, name string, streamed *int64, o *Options) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readCapped(rc, name, int64(f.UncompressedSize64), streamed, o)
}

func readCapped(r io.Reader, name string, declared int64, streamed *int64, o *Options) ([]byte, error) {
	limit := o.MaxEntrySize
	if left := o.MaxTotalSize - *streamed; left < limit {
		limit = left
	}
	var buf bytes.Buffer
	if declared > 0 && declared <= limit {
		buf.Grow(int(declared))
	}
	n, err := io.Copy(&buf, io.LimitReader(r, limit+1))
	*streamed += n
	if err != nil {
		return nil, err
	}
	if n > limit {
		if n > o.MaxEntrySize {
			return nil, &LimitError{File: name, Limit: "MaxEntrySize", Size: n, Max: o.MaxEntrySize}
		}
		return nil, &LimitError{Limit: "MaxTotalSize", Size: *streamed, Max: o.MaxTotalSize}
	}
	return buf.Bytes(), nil
}

// countEntries counts the central-directory records of a zip, reading
// only their fixed-size headers and stopping past max, so that an archive
// holding (or claiming) more entries than allowed is refused before
// archive/zip allocates a File for each: archive/zip reads every record it
// finds, whatever count the end record declares. ok is false when the
// end-of-central-directory record is not found; archive/zip then reports
// the file as not a zip.
func countEntries(r io.ReaderAt, size int64, max int) (n int, ok bool) {
	const eocdLen = 22
	if size < eocdLen {
		return 0, false
	}
	tail := min(int64(eocdLen+65535), size)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return 0, false
	}
	i := bytes.LastIndex(buf, []byte("PK\x05\x06"))
	if i < 0 || len(buf)-i < eocdLen {
		return 0, false
	}
	off := int64(binary.LittleEndian.Uint32(buf[i+16:]))
	if off == 0xFFFFFFFF && i >= 20 && string(buf[i-20:i-16]) == "PK\x06\x07" {
		// zip64: the locator before the end record points at the zip64
		// end record, which holds the directory's offset.
		rec := make([]byte, 56)
		recOff := int64(binary.LittleEndian.Uint64(buf[i-20+8:]))
		if recOff < 0 || recOff > size-56 {
			return 0, false
		}
		if _, err := r.ReadAt(rec, recOff); err != nil || string(rec[:4]) != "PK\x06\x06" {
			return 0, false
		}
		off = int64(binary.LittleEndian.Uint64(rec[48:]))
	}
	var h [46]byte
	for n = 0; n <= max; n++ {
		if off < 0 || off > size-int64(len(h)) {
			break
		}
		if _, err := r.ReadAt(h[:], off); err != nil || string(h[:4]) != "PK\x01\x02" {
			break
		}
		off += int64(len(h)) + int64(binary.LittleEndian.Uint16(h[28:])) +
			int64(binary.LittleEndian.Uint16(h[30:])) + int64(binary.LittleEndian.Uint16(h[32:]))
	}
	return n, true
}

func clampInt64(v uint64) int64 {
	if v > 1<<62 {
		return 1 << 62
	}
	return int64(v)
}

// LoadDir loads a profile laid out as a directory tree (PRF-1): fsys holds
// profile/devicetype-capability.json and service/<ServiceId>/profile/…
// at its root. name, when not "", is checked like a zip name (with or
// without ".zip"). Results and errors are those of LoadZip. It is
// LoadDirContext without a deadline.
func LoadDir(fsys fs.FS, name string, opts *Options) (*Product, []Problem, error) {
	return LoadDirContext(context.Background(), fsys, name, opts)
}

// LoadDirContext is LoadDir that stops when ctx is done, returning an
// error that wraps ctx.Err().
func LoadDirContext(ctx context.Context, fsys fs.FS, name string, opts *Options) (*Product, []Problem, error) {
	o := opts.withDefaults()
	var files []entry
	var count int
	var streamed int64
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		count++
		if count > o.MaxEntries {
			return &LimitError{Limit: "MaxEntries", Size: int64(count), Max: int64(o.MaxEntries)}
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > o.MaxEntrySize {
			return &LimitError{File: p, Limit: "MaxEntrySize", Size: info.Size(), Max: o.MaxEntrySize}
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := readCapped(f, p, info.Size(), &streamed, &o)
		if err != nil {
			return err
		}
		files = append(files, entry{name: p, data: data})
		return nil
	})
	if err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("profile: reading directory %q: %w", name, err)
	}
	if name != "" && !strings.HasSuffix(strings.ToLower(name), ".zip") {
		name += ".zip"
	}
	return loadTree(ctx, baseName(name), files)
}

func baseName(name string) string {
	if name == "" {
		return ""
	}
	name = strings.ReplaceAll(name, "\\", "/")
	return path.Base(name)
}

// hidden reports whether an archive path is a hidden file (PRF-5, §8.3).
func hidden(p string) bool {
	if strings.HasPrefix(p, "__MACOSX/") || p == "__MACOSX" {
		return true
	}
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." && seg != ".." {
			return true
		}
		if strings.EqualFold(seg, "Thumbs.db") || strings.EqualFold(seg, "desktop.ini") {
			return true
		}
	}
	return false
}

// loadTree turns the files of a profile into a Product (PRF-1…PRF-6).
func loadTree(ctx context.Context, name string, files []entry) (*Product, []Problem, error) {
	c := newCollector(ctx)
	archive := &src{file: "", c: c}
	if name == "." || name == "/" {
		name = ""
	}

	// Hidden files are problems (§8.3); they are then left out.
	kept := files[:0:0]
	for _, f := range files {
		if hidden(f.name) {
			archive.problem(CodeHiddenFile, -1, "hidden file %q is in the archive; delete it and compress again (on macOS use zip -r -X, or remove __MACOSX and .DS_Store)", f.name)
			continue
		}
		kept = append(kept, f)
	}
	files = kept

	// One wrapping folder, and nothing beside it, is accepted with a warning (PRF-1).
	if top, ok := wrappingFolder(files); ok {
		archive.warn(CodeWrappingFolder, -1, "all files sit in folder %q; accepted, but zip the contents of the folder, not the folder itself", top)
		for i := range files {
			files[i].name = strings.TrimPrefix(files[i].name, top+"/")
		}
	}

	byName := map[string][]byte{}
	serviceDirs := map[string]string{} // folder name → path of its servicetype file
	var folders []string
	for _, f := range files {
		if _, dup := byName[f.name]; dup {
			archive.problem(CodeDuplicate, -1, "the archive holds %q twice; keep one", f.name)
			continue
		}
		byName[f.name] = f.data
		switch {
		case f.name == deviceFile, f.name == displayFile:
		case isServiceFile(f.name):
			dir := strings.Split(f.name, "/")[1]
			serviceDirs[dir] = f.name
			folders = append(folders, dir)
		default:
			archive.warn(CodeUnknownEntry, -1, "%q is not part of a profile and is ignored", f.name)
		}
	}

	data, ok := byName[deviceFile]
	if !ok {
		hint := ""
		for _, f := range files {
			if path.Base(f.name) == path.Base(deviceFile) {
				hint = fmt.Sprintf(" (found %q: move it to %s)", f.name, deviceFile)
				break
			}
		}
		archive.problem(CodeMissingFile, -1, "%s is missing%s", deviceFile, hint)
		return nil, c.warningList(), c.invalid(name)
	}
	if d, ok := byName[displayFile]; ok && len(bytes.TrimSpace(d)) > 0 {
		(&src{file: displayFile, data: d, c: c}).parse()
	}

	ds := &src{file: deviceFile, data: data, c: c}
	p, listed := ds.device()

	// Each listed service needs a servicetype file, found under its
	// serviceId, or else under its serviceType when several serviceIds
	// share one type (PRF-6).
	type parsedFile struct {
		svc *parsedService
		src *src
	}
	parsed := map[string]parsedFile{}
	used := map[string]bool{}
	if p != nil {
		for _, l := range listed {
			if c.err != nil {
				break
			}
			dir := l.ID
			if _, ok := serviceDirs[dir]; !ok {
				dir = l.Type
			}
			file, ok := serviceDirs[dir]
			if !ok {
				also := ""
				if l.Type != "" && l.Type != l.ID {
					also = fmt.Sprintf(" (or service/%s/profile/%s, shared by serviceType)", l.Type, serviceFile)
				}
				ds.problem(CodeServiceNoFile, l.off, "service %q is listed but service/%s/profile/%s is missing%s; add it or remove the service from serviceTypeCapabilities", l.ID, l.ID, serviceFile, also)
				continue
			}
			used[dir] = true
			pf, seen := parsed[dir]
			if !seen {
				pf.src = &src{file: file, data: byName[file], c: c}
				pf.svc = pf.src.service(dir)
				parsed[dir] = pf
			}
			svc := pf.svc
			if svc == nil {
				continue
			}
			if l.Type != "" && svc.Type != "" && svc.Type != l.Type {
				pf.src.problem(CodeServiceType, svc.typeOff, "serviceType is %q but %s lists service %q with serviceType %q; make them equal", svc.Type, deviceFile, l.ID, l.Type)
				continue
			}
			s := svc.Service
			s.ID, s.Option = l.ID, l.Option
			if l.Type != "" {
				s.Type = l.Type
			}
			p.Services = append(p.Services, s)
		}
		sort.Strings(folders)
		for _, dir := range folders {
			if !used[dir] {
				s := &src{file: serviceDirs[dir], c: c}
				s.problem(CodeServiceUnlisted, -1, "no service in serviceTypeCapabilities of %s has serviceId or serviceType %q; list the service there or delete this file", deviceFile, dir)
			}
		}
		if name != "" {
			want := p.DeviceType + "_" + p.ManufacturerID + "_" + p.Model + ".zip"
			got := name
			if strings.HasSuffix(strings.ToLower(got), ".zip") {
				got = got[:len(got)-4] + ".zip"
			}
			if p.DeviceType != "" && p.ManufacturerID != "" && p.Model != "" && got != want {
				archive.problem(CodeZipName, -1, "the file is named %q but %s says %s: name it %q (§8.2)", name, deviceFile, nameDiff(got, p), want)
			}
		}
	}
	if c.err != nil {
		return nil, nil, c.stopped()
	}
	if len(c.problems) > 0 {
		return nil, c.warningList(), c.invalid(name)
	}
	p.buildIndex()
	return p, c.warningList(), nil
}

// nameDiff says which parts of a zip name differ from the product, when
// the name has the three parts; otherwise it lists all three.
func nameDiff(got string, p *Product) string {
	parts := strings.Split(strings.TrimSuffix(got, ".zip"), "_")
	want := [3][2]string{{"deviceType", p.DeviceType}, {"manufacturerId", p.ManufacturerID}, {"model", p.Model}}
	var diffs []string
	for i, w := range want {
		if len(parts) != 3 || parts[i] != w[1] {
			diffs = append(diffs, fmt.Sprintf("%s %q", w[0], w[1]))
		}
	}
	if len(parts) == 3 {
		return strings.Join(diffs, " and ")
	}
	return strings.Join(diffs, ", ")
}

func isServiceFile(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) == 4 && parts[0] == "service" && parts[1] != "" && parts[2] == "profile" && parts[3] == serviceFile
}

// wrappingFolder reports the folder every file sits in, when there is one
// and it is not itself part of the profile layout.
func wrappingFolder(files []entry) (string, bool) {
	top := ""
	for _, f := range files {
		i := strings.IndexByte(f.name, '/')
		if i <= 0 {
			return "", false
		}
		t := f.name[:i]
		if top == "" {
			top = t
		} else if t != top {
			return "", false
		}
	}
	if top == "" || top == "profile" || top == "service" {
		return "", false
	}
	return top, true
}

// deviceKeys are the keys of a devices entry (PRF-2).
var deviceKeys = []string{"manufacturerId", "manufacturerName", "model", "protocolType", "deviceType", "omCapability", "serviceTypeCapabilities", "description"}

// listedService is one serviceTypeCapabilities entry.
type listedService struct {
	ID, Type string
	Option   Option
	off      int
}

// device reads devicetype-capability.json (PRF-2).
func (s *src) device() (*Product, []listedService) {
	root := s.parse()
	if root == nil || !s.object(root, "the file") {
		return nil, nil
	}
	devs, devOff := s.array(root, "devices", false, true)
	if len(devs) != 1 {
		if _, _, ok := root.get("devices"); ok {
			s.problem(CodeDeviceCount, devOff, "devices holds %d devices; a profile describes exactly one", len(devs))
		}
		if len(devs) == 0 {
			return nil, nil
		}
	}
	d := devs[0]
	if !s.object(d, "the device") {
		return nil, nil
	}
	s.knownKeys(d, "the device", deviceKeys)
	p := &Product{}
	var off int
	p.ManufacturerID, off = s.str(d, "manufacturerId", true)
	s.checkKeyPart(p.ManufacturerID, off, "manufacturerId")
	p.ManufacturerName, _ = s.str(d, "manufacturerName", false)
	p.Model, off = s.str(d, "model", true)
	s.checkKeyPart(p.Model, off, "model")
	p.DeviceType, off = s.str(d, "deviceType", true)
	if p.DeviceType != "" && !isUpperCamel(p.DeviceType) {
		s.warn(CodeNaming, off, "deviceType %q is not UpperCamelCase (e.g. WaterMeter)", p.DeviceType)
	}
	pt, ptOff := s.str(d, "protocolType", true)
	p.ProtocolType = s.protocol(pt, ptOff, "protocolType")
	if om, _, ok := d.get("omCapability"); ok {
		p.OM = s.omCapability(om)
	}
	list, _ := s.array(d, "serviceTypeCapabilities", false, true)
	var out []listedService
	seen := map[string]bool{}
	for _, n := range list {
		if !s.object(n, "a serviceTypeCapabilities entry") {
			continue
		}
		s.knownKeys(n, "a serviceTypeCapabilities entry", []string{"serviceId", "serviceType", "option"})
		var l listedService
		var tOff, oOff int
		l.ID, l.off = s.str(n, "serviceId", true)
		s.checkName(l.ID, l.off, "serviceId")
		l.Type, tOff = s.str(n, "serviceType", true)
		s.checkName(l.Type, tOff, "serviceType")
		opt, oOff := s.str(n, "option", false)
		l.Option = s.option(opt, oOff)
		if l.ID == "" {
			continue
		}
		if seen[l.ID] {
			s.problem(CodeDuplicate, l.off, "serviceId %q is listed twice; each service needs its own serviceId", l.ID)
			continue
		}
		seen[l.ID] = true
		if !isUpperCamel(l.ID) {
			s.warn(CodeNaming, l.off, "serviceId %q is not UpperCamelCase (e.g. WaterMeter)", l.ID)
		}
		out = append(out, l)
	}
	return p, out
}

// checkKeyPart rejects characters that break the zip name or catalog key.
func (s *src) checkKeyPart(v string, off int, key string) {
	if strings.ContainsAny(v, "/\\") {
		s.problem(CodeBadName, off, "%s %q contains a slash; use letters, digits, '-' and '_'", key, v)
	}
}

// parsedService is a Service with the offset of its serviceType.
type parsedService struct {
	Service
	typeOff int
}

// service reads one servicetype-capability.json (PRF-3).
func (s *src) service(dir string) *parsedService {
	root := s.parse()
	if root == nil || !s.object(root, "the file") {
		return nil
	}
	list, listOff := s.array(root, "services", false, true)
	if len(list) != 1 {
		if _, _, ok := root.get("services"); ok {
			s.problem(CodeServiceCount, listOff, "services holds %d services; a servicetype file describes exactly one", len(list))
		}
		if len(list) == 0 {
			return nil
		}
	}
	n := list[0]
	if !s.object(n, "the service") {
		return nil
	}
	s.knownKeys(n, "the service", []string{"serviceType", "description", "commands", "properties", "events"})
	ps := &parsedService{}
	ps.Type, ps.typeOff = s.str(n, "serviceType", true)
	ps.Description, _ = s.str(n, "description", false)
	props, _ := s.array(n, "properties", false, false)
	cmds, _ := s.array(n, "commands", true, false)
	ps.Properties = s.properties(props, &profileKeys, dir)
	ps.Commands = s.commands(cmds, &profileKeys, dir)
	return ps
}
