package profile

// CodecModel is a product seen by a codec: the data types of its
// properties, command paras and response paras by name ("int", "decimal",
// "string", …). It has the methods of codec.Model and codec.ResponseModel,
// so a codec compiled with it has its field mappings checked against the
// product (COD-3):
//
//	d, err := codec.Compile(codecJSON, product.CodecModel())
//
// profile does not import codec: the methods match, nothing more. The zero
// CodecModel knows no service.
type CodecModel struct{ p *Product }

// CodecModel returns p as a codec's product model.
func (p *Product) CodecModel() CodecModel { return CodecModel{p} }

// PropertyType returns the data type name of property name of service
// serviceID; ok is false when either does not exist.
func (m CodecModel) PropertyType(serviceID, name string) (dataType string, ok bool) {
	if m.p == nil {
		return "", false
	}
	return typeName(m.p.PropertyType(serviceID, name))
}

// ParaType returns the data type name of para name of command command of
// service serviceID; ok is false when any of them does not exist.
func (m CodecModel) ParaType(serviceID, command, name string) (dataType string, ok bool) {
	if m.p == nil {
		return "", false
	}
	return typeName(m.p.ParaType(serviceID, command, name))
}

// ResponseParaType returns the data type name of para name in a response
// of command command of service serviceID; ok is false when there is none.
func (m CodecModel) ResponseParaType(serviceID, command, name string) (dataType string, ok bool) {
	if m.p == nil {
		return "", false
	}
	return typeName(m.p.ResponseParaType(serviceID, command, name))
}

func typeName(t DataType, ok bool) (string, bool) {
	if !ok {
		return "", false
	}
	return t.String(), true
}
