package codec

import "strings"

// Model is the part of a product model (profile) that Compile checks a codec
// against (COD-3): the dataType of a service's property and of a command's
// para, or ok=false when there is none. The profile package's product fits
// it through a small adapter; codec does not import profile.
type Model interface {
	PropertyType(serviceID, property string) (dataType string, ok bool)
	ParaType(serviceID, command, para string) (dataType string, ok bool)
}

// ResponseModel is an optional ability of a Model: the dataType of a para of
// a command's response. When the Model given to Compile implements it, the
// body fields of command responses are checked too.
type ResponseModel interface {
	ResponseParaType(serviceID, command, para string) (dataType string, ok bool)
}

// fieldClass is what a codec field can feed into a product model: the
// categories of the FAQ's §8.5 table.
type fieldClass int

const (
	classInt     fieldClass = iota // unscaled integer
	classDecimal                   // scaled integer or float
	classString                    // string, varstring
	classArray                     // array, variant
)

func (c fieldClass) String() string {
	return [...]string{"int", "decimal", "string", "array"}[c]
}

// dataGroup is one row of the FAQ's §8.5 table: the model dataTypes that
// take the same codec fields.
type dataGroup int

const (
	groupUnknown dataGroup = iota
	groupInt               // int, and the newer model's long and boolean
	groupDecimal           // decimal, and the newer model's double
	groupString            // string, DateTime, jsonObject, enum, "string list"
)

func groupOf(dataType string) dataGroup {
	switch strings.ToLower(strings.TrimSpace(dataType)) {
	case "int", "integer", "long", "boolean", "bool":
		return groupInt
	case "decimal", "double", "float":
		return groupDecimal
	case "string", "datetime", "jsonobject", "enum", "string list":
		return groupString
	}
	return groupUnknown
}

// accepts reports whether a model dataType can hold values of class c (§8.5):
// int ← int or array; decimal ← int, string or array (and our decimal
// fields); string, DateTime, jsonObject ← string or array. known is false
// for a dataType not in that list.
func accepts(dataType string, c fieldClass) (ok, known bool) {
	switch groupOf(dataType) {
	case groupInt:
		return c == classInt || c == classArray, true
	case groupDecimal:
		return true, true
	case groupString:
		return c == classString || c == classArray, true
	}
	return false, false
}

// allowedText says which fields a dataType takes, for a type-mismatch
// problem.
func allowedText(dataType string) string {
	switch groupOf(dataType) {
	case groupInt:
		return "use an unscaled integer or an array field"
	case groupString:
		return "use a string, varstring, array or variant field"
	}
	return ""
}
