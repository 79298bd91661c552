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

// accepts reports whether a model dataType can hold values of class c (§8.5):
// int ← int or array; decimal ← int, string or array (and our decimal
// fields); string, DateTime, jsonObject ← string or array. The newer model's
// long and boolean count as int, enum and "string list" as string, double as
// decimal. known is false for a dataType not in that list.
func accepts(dataType string, c fieldClass) (ok, known bool) {
	switch strings.ToLower(strings.TrimSpace(dataType)) {
	case "int", "integer", "long", "boolean", "bool":
		return c == classInt || c == classArray, true
	case "decimal", "double", "float":
		return true, true
	case "string", "datetime", "jsonobject", "enum", "string list":
		return c == classString || c == classArray, true
	}
	return false, false
}
