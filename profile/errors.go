package profile

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Callers branch on them with errors.Is; the errors the
// package returns wrap them with context.
var (
	// ErrInvalid means a profile failed validation; the error is a
	// *ValidationError listing every problem.
	ErrInvalid = errors.New("profile: invalid profile")
	// ErrTooLarge means an archive or directory exceeded a limit of
	// Options; the error is a *LimitError.
	ErrTooLarge = errors.New("profile: input too large")
	// ErrExists means the catalog already holds a product with the same
	// (manufacturerId, model) (PRF-7).
	ErrExists = errors.New("profile: product already exists")
	// ErrNotFound means the catalog holds no such product.
	ErrNotFound = errors.New("profile: product not found")
	// ErrLocked means devices are registered against the product, so it
	// cannot be replaced or deleted; the error is a *LockedError (PRF-7).
	ErrLocked = errors.New("profile: product is locked")
	// ErrMismatch means reported data or a command does not fit the model;
	// the error is a *CheckError (PRF-8, PRF-9).
	ErrMismatch = errors.New("profile: data does not fit the product model")
)

// Code is the stable identifier of a validation problem or warning. Codes
// never change meaning; new ones may be added.
type Code string

// Problem codes (PRF-1, PRF-2, PRF-3, PRF-5).
const (
	CodeZipName         Code = "zip-name"         // the zip name differs from deviceType_manufacturerId_model.zip
	CodeNotZip          Code = "not-zip"          // the file is not a zip archive
	CodeBadJSON         Code = "bad-json"         // a JSON file is not valid JSON
	CodeNotArray        Code = "not-array"        // commands/properties (or another list) is not an array
	CodeHiddenFile      Code = "hidden-file"      // a hidden file (.x, __MACOSX/, Thumbs.db) in the archive
	CodeMissingFile     Code = "missing-file"     // devicetype-capability.json is absent
	CodeServiceNoFile   Code = "service-no-file"  // a listed service has no servicetype file
	CodeServiceUnlisted Code = "service-unlisted" // a servicetype file no service lists
	CodeServiceType     Code = "service-type"     // a servicetype file's serviceType differs from the list
	CodeDuplicate       Code = "duplicate"        // duplicate serviceId, propertyName, commandName, paraName, responseName, or zip entry
	CodeDataType        Code = "data-type"        // unknown dataType
	CodeMethod          Code = "method"           // unknown or repeated method letters, or a missing method
	CodeEnumNotString   Code = "enum-not-string"  // enumList on a non-string
	CodeMinMax          Code = "min-max"          // min > max (max = 0 excepted)
	CodeMaxLength       Code = "max-length"       // negative maxLength
	CodeStep            Code = "step"             // negative step
	CodeDeviceCount     Code = "device-count"     // devices does not hold exactly one device
	CodeServiceCount    Code = "service-count"    // services does not hold exactly one service
	CodeMissingField    Code = "missing-field"    // a required key is absent or empty
	CodeFieldType       Code = "field-type"       // a key holds the wrong JSON type
	CodeProtocol        Code = "protocol"         // unknown protocolType
	CodeOption          Code = "option"           // unknown option
	CodeBadName         Code = "bad-name"         // a name the platform cannot use (empty, or with / . $)
	CodeWrappingFolder  Code = "wrapping-folder"  // warning: entries sit under one wrapping folder
	CodeNaming          Code = "naming"           // warning: a name breaks the naming convention
	CodeUnknownEntry    Code = "unknown-entry"    // warning: a file the loader does not use
	CodeUnknownKey      Code = "unknown-key"      // warning: a key the loader does not read
	CodeRepeatedKey     Code = "repeated-key"     // warning: a key given twice in one object
	CodeMoreWarnings    Code = "more-warnings"    // warning: the count of warnings past MaxProblems, not listed
)

// A Problem is one thing wrong (or, as a warning, worth a look) in a
// profile: where, which rule, and what to do.
type Problem struct {
	Code Code `json:"code"`
	// File is the path inside the archive or directory
	// ("service/Meter/profile/servicetype-capability.json"); empty for the
	// archive as a whole.
	File string `json:"file,omitempty"`
	// Line and Column (1-based; the column counts characters) locate the
	// offending key or value; 0 when the problem has no place in a file.
	Line   int `json:"line,omitempty"`
	Column int `json:"column,omitempty"`
	// Message is a sentence a person can act on.
	Message string `json:"message"`
}

// String formats p as "file:line:col: message [code]".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
		}
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	fmt.Fprintf(&b, " [%s]", p.Code)
	return b.String()
}

// ValidationError lists the problems that made loading fail (PRF-5): the
// first MaxProblems, ordered by file and place, and the number of further
// ones in More. It wraps ErrInvalid.
type ValidationError struct {
	// Name is the archive's file name or the directory's name, if known.
	Name     string
	Problems []Problem
	More     int // problems found beyond those listed
}

// Error lists the problems, one per line after a count:
// "profile: <name>: 2 problems\n\t<problem>…".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("profile: ")
	if e.Name != "" {
		fmt.Fprintf(&b, "%s: ", e.Name)
	}
	fmt.Fprintf(&b, "%d problem", len(e.Problems)+e.More)
	if len(e.Problems)+e.More != 1 {
		b.WriteString("s")
	}
	for _, p := range e.Problems {
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "\n\t… and %d more", e.More)
	}
	return b.String()
}

// Unwrap returns ErrInvalid.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// LimitError reports input refused for its size before it was read into
// memory. It wraps ErrTooLarge.
type LimitError struct {
	// File is the entry concerned; empty for the archive as a whole.
	File string
	// Limit names the Options field that was exceeded.
	Limit string
	// Size is the size (or count) found, Max the allowed one. Counting and
	// streaming stop one past Max, so Size may be less than the true total.
	Size, Max int64
}

// Error names the entry (or the archive), the size found, the limit and
// the Options field that raises it.
func (e *LimitError) Error() string {
	where := "archive"
	if e.File != "" {
		where = e.File
	}
	return fmt.Sprintf("profile: %s: %d exceeds %s of %d; refused before reading (raise Options.%s if the profile is genuine)",
		where, e.Size, e.Limit, e.Max, e.Limit)
}

// Unwrap returns ErrTooLarge.
func (e *LimitError) Unwrap() error { return ErrTooLarge }

// LockedError reports an edit refused because devices use the product
// (PRF-7, §8.6). It wraps ErrLocked.
type LockedError struct {
	ManufacturerID, Model string
	// Devices is the number of devices registered against the product.
	Devices int
}

// Error names the product and the number of devices that lock it.
func (e *LockedError) Error() string {
	return fmt.Sprintf("profile: product %s/%s is locked: %d device(s) are registered against it; delete them first",
		e.ManufacturerID, e.Model, e.Devices)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Rule names the check a value broke (PRF-8, PRF-9).
type Rule string

// The rules CheckReport and CheckCommand apply.
const (
	RuleService  Rule = "service"    // the serviceId is not in the product
	RuleCommand  Rule = "command"    // the method is not a command of the service
	RuleParas    Rule = "paras"      // paras is missing or empty (PRF-9, §7.1)
	RuleName     Rule = "name"       // the name is not a property/para of the service/command
	RuleType     Rule = "type"       // the value does not fit the dataType
	RuleMin      Rule = "min"        // below min
	RuleMax      Rule = "max"        // above max
	RuleStep     Rule = "step"       // not on the step grid
	RuleLength   Rule = "max-length" // a string longer than maxLength (or outside min/max length)
	RuleEnum     Rule = "enum"       // not one of enumList
	RuleRequired Rule = "required"   // a required property/para is absent
)

// A Mismatch is one value that does not fit the model.
type Mismatch struct {
	// Name is the property or para; the serviceId or method for
	// RuleService and RuleCommand.
	Name    string `json:"name"`
	Rule    Rule   `json:"rule"`
	Message string `json:"message"`
}

// CheckError lists every mismatch CheckReport or CheckCommand found. It
// wraps ErrMismatch.
type CheckError struct {
	ServiceID string
	// Command is the method checked by CheckCommand; empty for reports.
	Command    string
	Mismatches []Mismatch
}

// Error names the service (and command) and joins every mismatch's
// message with "; ".
func (e *CheckError) Error() string {
	var b strings.Builder
	b.WriteString("profile: ")
	if e.Command != "" {
		fmt.Fprintf(&b, "command %s of service %s", e.Command, e.ServiceID)
	} else {
		fmt.Fprintf(&b, "report of service %s", e.ServiceID)
	}
	for i, m := range e.Mismatches {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(m.Message)
	}
	return b.String()
}

// Unwrap returns ErrMismatch.
func (e *CheckError) Unwrap() error { return ErrMismatch }
