package profile

import "context"

// modelFile is the name problems of LoadModelJSON carry.
const modelFile = "model.json"

// LoadModelJSON loads the newer single-file product model (PRF-10):
//
//	{"manufacturer_id", "manufacturer_name", "model", "device_type",
//	 "protocol_type", "service_capabilities":[{"service_id", "service_type",
//	 "option", "description", "properties":[…], "commands":[…]}]}
//
// with snake_case keys (property_name, data_type, enum_list, max_length,
// default_value, para_name, command_name, response_name) into the same
// types LoadZip returns. Where the file has no manufacturer_id, the
// manufacturer_name stands in; where it has no model, the product_id does
// (our choice: the newer model keys products by product_id). device_type
// may also be spelled product_type. Size is bounded by opts.MaxEntrySize.
// Problems and warnings are those of LoadZip, with file "model.json". It
// is LoadModelJSONContext without a deadline.
func LoadModelJSON(data []byte, opts *Options) (*Product, []Problem, error) {
	return LoadModelJSONContext(context.Background(), data, opts)
}

// LoadModelJSONContext is LoadModelJSON that stops when ctx is done,
// returning an error that wraps ctx.Err().
func LoadModelJSONContext(ctx context.Context, data []byte, opts *Options) (*Product, []Problem, error) {
	o := opts.withDefaults()
	if int64(len(data)) > o.MaxEntrySize {
		return nil, nil, &LimitError{File: modelFile, Limit: "MaxEntrySize", Size: int64(len(data)), Max: o.MaxEntrySize}
	}
	c := newCollector(ctx)
	s := &src{file: modelFile, data: data, c: c}
	p := s.model()
	if c.err != nil {
		return nil, nil, c.stopped()
	}
	if len(c.problems) > 0 {
		return nil, c.warningList(), c.invalid(modelFile)
	}
	p.buildIndex()
	return p, c.warningList(), nil
}

func (s *src) model() *Product {
	root := s.parse()
	if root == nil || !s.object(root, "the file") {
		return nil
	}
	k := &modelKeys
	s.knownKeys(root, "the model", []string{"product_id", "name", "manufacturer_id", "manufacturer_name", "model", "device_type", "product_type",
		"protocol_type", "data_format", "industry", "description", "service_capabilities", "app_id", "app_name", "create_time"})
	p := &Product{}
	var off int
	p.ManufacturerName, _ = s.str(root, "manufacturer_name", false)
	if _, _, ok := root.get("manufacturer_id"); ok || p.ManufacturerName == "" {
		p.ManufacturerID, off = s.str(root, "manufacturer_id", true)
		s.checkKeyPart(p.ManufacturerID, off, "manufacturer_id")
	} else {
		p.ManufacturerID = p.ManufacturerName
	}
	if _, _, ok := root.get("model"); ok {
		p.Model, off = s.str(root, "model", true)
	} else if _, _, ok := root.get("product_id"); ok {
		p.Model, off = s.str(root, "product_id", true)
	} else {
		p.Model, off = s.str(root, "model", true)
	}
	s.checkKeyPart(p.Model, off, "model")
	dtKey := "device_type"
	if _, _, ok := root.get(dtKey); !ok {
		if _, _, ok := root.get("product_type"); ok {
			dtKey = "product_type"
		}
	}
	p.DeviceType, _ = s.str(root, dtKey, true)
	pt, ptOff := s.str(root, "protocol_type", true)
	p.ProtocolType = s.protocol(pt, ptOff, "protocol_type")
	list, _ := s.array(root, "service_capabilities", false, true)
	seen := map[string]bool{}
	for _, n := range list {
		if !s.object(n, "a service_capabilities entry") {
			continue
		}
		s.knownKeys(n, "a service_capabilities entry", []string{"service_id", "service_type", "option", "description", "properties", "commands", "events"})
		var svc Service
		var idOff, tOff int
		svc.ID, idOff = s.str(n, k.serviceID, true)
		s.checkName(svc.ID, idOff, k.serviceID)
		if _, _, ok := n.get(k.serviceType); ok {
			svc.Type, tOff = s.str(n, k.serviceType, true)
			s.checkName(svc.Type, tOff, k.serviceType)
		} else {
			svc.Type = svc.ID
		}
		opt, oOff := s.str(n, "option", false)
		svc.Option = s.option(opt, oOff)
		svc.Description, _ = s.str(n, "description", false)
		props, _ := s.array(n, "properties", true, false)
		cmds, _ := s.array(n, "commands", true, false)
		svc.Properties = s.properties(props, k, svc.ID)
		svc.Commands = s.commands(cmds, k, svc.ID)
		if svc.ID == "" {
			continue
		}
		if seen[svc.ID] {
			s.problem(CodeDuplicate, idOff, "%s %q appears twice; each service needs its own %s", k.serviceID, svc.ID, k.serviceID)
			continue
		}
		seen[svc.ID] = true
		if !isUpperCamel(svc.ID) {
			s.warn(CodeNaming, idOff, "%s %q is not UpperCamelCase (e.g. WaterMeter)", k.serviceID, svc.ID)
		}
		p.Services = append(p.Services, svc)
	}
	if len(list) == 0 {
		if _, _, ok := root.get("service_capabilities"); ok {
			s.problem(CodeMissingField, root.off, "service_capabilities is empty; a product needs at least one service")
		}
	}
	return p
}
