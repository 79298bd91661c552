package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/doze-io/doze/codec"
	"github.com/doze-io/doze/profile"
	"github.com/doze-io/doze/push"
)

func (p *Platform) login(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		return badRequest("bad_form", "send appId and secret form-encoded (at most %d bytes): %v", maxBody, err)
	}
	tok, err := p.auth.Login(remoteAddr(r), r.PostForm.Get("appId"), r.PostForm.Get("secret"))
	if err != nil {
		return loginErr(w, err)
	}
	writeJSON(w, http.StatusOK, tok)
	return nil
}

func (p *Platform) refreshToken(w http.ResponseWriter, r *http.Request) error {
	var body struct{ AppID, Secret, RefreshToken string }
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	tok, err := p.auth.Refresh(remoteAddr(r), body.AppID, body.Secret, body.RefreshToken)
	if err != nil {
		return loginErr(w, err)
	}
	writeJSON(w, http.StatusOK, tok)
	return nil
}

// loginErr answers a refused login: 429 with Retry-After when attempts
// are over their limit (SEC-5), else 401.
func loginErr(w http.ResponseWriter, err error) error {
	var le *loginLimitError
	if errors.As(err, &le) {
		w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(le.RetryAfter)))
		return &httpError{Status: http.StatusTooManyRequests, Code: "login_rate_limited", Err: err}
	}
	return &httpError{Status: http.StatusUnauthorized, Code: "bad_credentials", Err: err}
}

// remoteAddr is the request's source address (the TCP peer; the platform
// trusts no forwarding header).
func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

func (p *Platform) resetSecret(w http.ResponseWriter, r *http.Request) error {
	secret, ok := p.auth.ResetSecret(appOf(r))
	if !ok {
		return notFound("app_not_found", "app %s is not known", appOf(r))
	}
	if err := p.saveApps(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"appId": appOf(r), "secret": secret})
	return nil
}

// productError maps profile and codec errors to answers that list every
// problem (PRF-5, COD-3).
func productError(err error) error {
	var ve *profile.ValidationError
	var ce *codec.CompileError
	var me *mappingError
	switch {
	case errors.As(err, &me) && errors.As(err, &ve):
		return &problemsError{Code: "invalid_mapping", Err: err, Problems: ve.Problems}
	case errors.As(err, &me):
		return withStatus(err, http.StatusBadRequest, "invalid_mapping")
	case errors.As(err, &ve):
		return &problemsError{Code: "invalid_profile", Err: err, Problems: ve.Problems}
	case errors.As(err, &ce):
		return &problemsError{Code: "invalid_codec", Err: err, Problems: ce.Problems}
	case errors.Is(err, profile.ErrExists):
		return withStatus(err, http.StatusConflict, "product_exists")
	case errors.Is(err, profile.ErrLocked):
		return withStatus(err, http.StatusConflict, "product_in_use")
	case errors.Is(err, profile.ErrNotFound):
		return withStatus(err, http.StatusNotFound, "product_not_found")
	case errors.Is(err, profile.ErrTooLarge):
		return withStatus(err, http.StatusBadRequest, "profile_too_large")
	}
	return withStatus(err, http.StatusBadRequest, "invalid_profile")
}

// problemsError is a 400 whose body lists every problem found.
type problemsError struct {
	Code     string
	Err      error
	Problems any
}

func (e *problemsError) Error() string { return e.Err.Error() }

func writeProblems(w http.ResponseWriter, pe *problemsError) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"error_code": pe.Code,
		"error_desc": pe.Err.Error(), "problems": pe.Problems})
}

type productJSON struct {
	ManufacturerID string            `json:"manufacturerId"`
	Model          string            `json:"model"`
	DeviceType     string            `json:"deviceType"`
	ProtocolType   string            `json:"protocolType"`
	HasCodec       bool              `json:"hasCodec"`
	HasMapping     bool              `json:"hasMapping"` // an LwM2M resource mapping (LWM-12)
	Services       []profile.Service `json:"services"`
	Warnings       []profile.Problem `json:"warnings,omitempty"`
}

func (p *Platform) productJSON(prod *profile.Product, warnings []profile.Problem) productJSON {
	mid, model := prod.Key()
	return productJSON{ManufacturerID: mid, Model: model, DeviceType: prod.DeviceType, ProtocolType: prod.ProtocolType,
		HasCodec: p.products.Codec(mid, model) != nil, HasMapping: p.products.Mapping(mid, model) != nil, Services: prod.Services, Warnings: warnings}
}

func (p *Platform) addProduct(w http.ResponseWriter, r *http.Request) error {
	// Profiles and codecs are small and must be whole to be checked and
	// stored: each is read under its own cap (SEC-3).
	var (
		prof, codecJSON, mapping []byte
		profName                 string
		haveProf                 bool
	)
	_, err := p.readUpload(w, r, `a file field "profile" (the zip) and optionally "codec" (codec JSON) and "mapping" (LwM2M resource mapping JSON)`, map[string]filePart{
		"profile": {limit: maxProfileUpload, consume: func(name string, rd io.Reader) (err error) {
			profName, haveProf = name, true
			prof, err = io.ReadAll(rd)
			return err
		}},
		"codec": {limit: maxCodecUpload, consume: func(_ string, rd io.Reader) (err error) {
			codecJSON, err = io.ReadAll(rd)
			return err
		}},
		"mapping": {limit: maxMappingUpload, consume: func(_ string, rd io.Reader) (err error) {
			mapping, err = io.ReadAll(rd)
			return err
		}},
	})
	if err != nil {
		return err
	}
	if !haveProf {
		return badRequest("missing_profile", "the multipart field \"profile\" with the profile zip is missing")
	}
	// Checking stops when the client goes away (SEC-3); nothing is added.
	prod, warnings, err := p.products.AddUpload(r.Context(), upload{name: profName, prof: prof, codecJSON: codecJSON, lwmMap: mapping})
	if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return err
	}
	if err != nil {
		return productError(err)
	}
	// A crash before this write leaves the product without owner: the
	// next start gives it to the default owner (migrate.go).
	mid, model := prod.Key()
	if err := p.db.Owners().Set(r.Context(), kindProduct, productKey(mid, model), appOf(r)); err != nil {
		return err
	}
	p.publishModel(appOf(r), push.DeviceModelAdded, prod)
	writeJSON(w, http.StatusCreated, p.productJSON(prod, warnings))
	return nil
}

func (p *Platform) listProducts(w http.ResponseWriter, r *http.Request) error {
	mine := p.mine(r.Context(), appOf(r), kindProduct)
	out := []productJSON{}
	for _, prod := range p.products.catalog.List() {
		if !mine(productKey(prod.Key())) {
			continue
		}
		out = append(out, p.productJSON(prod, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"totalCount": len(out), "products": out})
	return nil
}

func (p *Platform) getProduct(w http.ResponseWriter, r *http.Request) error {
	if err := p.ownsProduct(r.Context(), appOf(r), pathValue(r, "manufacturerId"), pathValue(r, "model")); err != nil {
		return err
	}
	prod, err := p.products.catalog.Get(pathValue(r, "manufacturerId"), pathValue(r, "model"))
	if err != nil {
		return productError(err)
	}
	writeJSON(w, http.StatusOK, p.productJSON(prod, nil))
	return nil
}

func (p *Platform) deleteProduct(w http.ResponseWriter, r *http.Request) error {
	mid, model := pathValue(r, "manufacturerId"), pathValue(r, "model")
	if err := p.ownsProduct(r.Context(), appOf(r), mid, model); err != nil {
		return err
	}
	prod, err := p.products.catalog.Get(mid, model)
	if err != nil {
		return productError(err)
	}
	if err := p.products.Delete(mid, model); err != nil {
		return productError(err)
	}
	p.forgetOwner(kindProduct, productKey(mid, model))
	p.publishModel(appOf(r), push.DeviceModelDeleted, prod)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// codecFor returns the codec of the product a codec request names.
// Another app's product is answered as one without a codec (APP-3).
func (p *Platform) codecFor(r *http.Request, manufacturerID, model string) (codec.Codec, error) {
	c := p.products.Codec(manufacturerID, model)
	if c != nil && p.ownsProduct(r.Context(), appOf(r), manufacturerID, model) != nil {
		c = nil
	}
	if c == nil {
		return nil, notFound("codec_not_found", "product %s/%s has no codec; upload one with the product", manufacturerID, model)
	}
	return c, nil
}

func (p *Platform) codecDecode(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ManufacturerID string `json:"manufacturerId"`
		Model          string `json:"model"`
		Hex            string `json:"hex"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	c, err := p.codecFor(r, body.ManufacturerID, body.Model)
	if err != nil {
		return err
	}
	payload, err := hex.DecodeString(strings.ReplaceAll(body.Hex, " ", ""))
	if err != nil {
		return badRequest("bad_hex", "hex is not hexadecimal: %v", err)
	}
	m, err := c.Decode(payload)
	if err != nil {
		return withStatus(err, http.StatusBadRequest, "decode_failed")
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (p *Platform) codecEncode(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ManufacturerID string          `json:"manufacturerId"`
		Model          string          `json:"model"`
		Message        json.RawMessage `json:"message"`
	}
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	c, err := p.codecFor(r, body.ManufacturerID, body.Model)
	if err != nil {
		return err
	}
	if len(body.Message) == 0 {
		return badRequest("missing_message", "message must hold a codec message such as {\"msgType\":\"cloudReq\",…}")
	}
	m, err := codec.ParseMessage(body.Message)
	if err != nil {
		return withStatus(err, http.StatusBadRequest, "bad_message")
	}
	b, err := c.Encode(m)
	if err != nil {
		return withStatus(err, http.StatusBadRequest, "encode_failed")
	}
	writeJSON(w, http.StatusOK, map[string]any{"hex": strings.ToUpper(hex.EncodeToString(b)), "message": m})
	return nil
}
