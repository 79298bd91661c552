package registry

// Products tells the registry which products exist, so that a device's
// deviceInfo can be checked against the catalog (REG-1, §3.19, §8.8).
// profile.Catalog fits through a small adapter.
type Products interface {
	// Exists reports whether the catalog has the product (manufacturerID,
	// model).
	Exists(manufacturerID, model string) bool
}

// ProductsFunc adapts a function to Products.
type ProductsFunc func(manufacturerID, model string) bool

// Exists calls f.
func (f ProductsFunc) Exists(manufacturerID, model string) bool { return f(manufacturerID, model) }
