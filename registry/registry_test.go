package registry_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/doze-io/doze/registry"
	"github.com/stretchr/testify/require"
)

// TestRegisterBadInput: every bad input of REG-1/REG-2/REG-4 gets a typed
// error naming the field and the rule.
func TestRegisterBadInput(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	gw, err := r.Register(ctx, registry.Enrollment{NodeID: "gw-1", Info: registry.Info{ManufacturerID: "acme", DeviceType: "Gateway", Model: "GW1", ProtocolType: "CoAP"}, NodeType: registry.Gateway})
	require.NoError(t, err)
	endpoint := register(t, r, "861111111111111")

	long := strings.Repeat("8", 257)
	cases := []struct {
		name  string
		reg   registry.Enrollment
		field string
		want  error
		rule  string
	}{
		{"empty nodeId", registry.Enrollment{Info: meterInfo}, "nodeId", registry.ErrInvalid, "must not be empty"},
		{"nodeId over 256 characters", registry.Enrollment{NodeID: long, Info: meterInfo}, "nodeId", registry.ErrInvalid, "at most 256 characters; got 257"},
		{"nodeId with a space", registry.Enrollment{NodeID: "86 1", Info: meterInfo}, "nodeId", registry.ErrInvalid, "must not contain spaces"},
		{"nodeId with the urn prefix twice", registry.Enrollment{NodeID: "urn:imei:URN:IMEI:861", Info: meterInfo}, "nodeId", registry.ErrInvalid, `must not repeat the "urn:imei:" prefix`},
		{"nodeId only the urn prefix", registry.Enrollment{NodeID: "urn:imei:", Info: meterInfo}, "nodeId", registry.ErrInvalid, "after"},
		{"duplicate nodeId", registry.Enrollment{NodeID: "861111111111111", Info: meterInfo}, "nodeId", registry.ErrNodeIDTaken, "already registered"},
		{"duplicate nodeId as urn:imei", registry.Enrollment{NodeID: "urn:imei:861111111111111", Info: meterInfo}, "nodeId", registry.ErrNodeIDTaken, "already registered"},
		{"negative timeout", registry.Enrollment{NodeID: "862", Info: meterInfo, Timeout: secs(-1)}, "timeout", registry.ErrInvalid, `timeout "-1": must be 0 (never expires) to 2147483647 seconds`},
		{"timeout over the maximum", registry.Enrollment{NodeID: "862", Info: meterInfo, Timeout: secs(2147483648)}, "timeout", registry.ErrInvalid, `timeout "2147483648": must be 0 (never expires) to 2147483647 seconds`},
		{"psk too short", registry.Enrollment{NodeID: "862", Info: meterInfo, PSK: registry.PSK("1234567")}, "psk", registry.ErrInvalid, "8 to 64 bytes; got 7"},
		{"psk too long", registry.Enrollment{NodeID: "862", Info: meterInfo, PSK: make(registry.PSK, 65)}, "psk", registry.ErrInvalid, "8 to 64 bytes; got 65"},
		{"unknown product", registry.Enrollment{NodeID: "862", Info: registry.Info{ManufacturerID: "acme", DeviceType: "X", Model: "NOPE", ProtocolType: "CoAP"}}, "deviceInfo", registry.ErrUnknownProduct, "catalog"},
		{"missing model", registry.Enrollment{NodeID: "862", Info: registry.Info{ManufacturerID: "acme", DeviceType: "X", ProtocolType: "CoAP"}}, "deviceInfo.model", registry.ErrInvalid, "must not be empty"},
		{"name too long", registry.Enrollment{NodeID: "862", Info: func() registry.Info { i := meterInfo; i.Name = long; return i }()}, "deviceInfo.name", registry.ErrInvalid, "at most 256"},
		{"unknown group", registry.Enrollment{NodeID: "862", Info: meterInfo, Groups: []string{"nope"}}, "groups", registry.ErrGroupNotFound, `groups "nope": must name an existing group`},
		{"unknown gateway", registry.Enrollment{NodeID: "862", Info: meterInfo, GatewayID: "nope"}, "gatewayId", registry.ErrGatewayNotFound, "GATEWAY"},
		{"gateway that is an endpoint", registry.Enrollment{NodeID: "862", Info: meterInfo, GatewayID: endpoint.ID}, "gatewayId", registry.ErrGatewayNotFound, "GATEWAY"},
		{"bad nodeType", registry.Enrollment{NodeID: "862", Info: meterInfo, NodeType: "HUB"}, "nodeType", registry.ErrInvalid, "ENDPOINT or GATEWAY"},
		{"nodeId not UTF-8", registry.Enrollment{NodeID: "861\xff2", Info: meterInfo}, "nodeId", registry.ErrInvalid, "must be valid UTF-8; found an invalid byte at byte 3"},
		{"verifyCode with a tab", registry.Enrollment{NodeID: "862", VerifyCode: "a\tb", Info: meterInfo}, "verifyCode", registry.ErrInvalid, "must not contain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Register(ctx, c.reg)
			require.ErrorIs(t, err, c.want, "Register: got %v", err)
			var fe *registry.FieldError
			require.True(t, errors.As(err, &fe), "want a *FieldError, got %T %v", err, err)
			require.Equal(t, c.field, fe.Field)
			require.Contains(t, err.Error(), c.rule)
			require.True(t, strings.HasPrefix(err.Error(), "registry: "), err.Error())
		})
	}
	_, n, err := r.List(ctx, registry.Query{})
	require.NoError(t, err)
	require.Equal(t, 2, n, "refused registrations store nothing")
	_ = gw
}

func TestRegisterReportsEveryProblem(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	_, err := r.Register(ctx, registry.Enrollment{Timeout: secs(-5), PSK: registry.PSK{1}, GatewayID: "no-gw", Groups: []string{"g1", "g2"}})
	require.Error(t, err)
	for _, field := range []string{"nodeId", "timeout", "psk", "deviceInfo.manufacturerId", "deviceInfo.model", `gatewayId "no-gw"`, `groups "g1"`, `groups "g2"`} {
		require.Contains(t, err.Error(), "registry: "+field, "joined error lists %s", field)
	}
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorIs(t, err, registry.ErrGatewayNotFound)
	require.ErrorIs(t, err, registry.ErrGroupNotFound)
}

func TestRegisterErrorValueIsShortened(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	_, err := r.Register(ctx, registry.Enrollment{NodeID: strings.Repeat("9", 10000), Info: meterInfo})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.Less(t, len(err.Error()), 300, "an error repeats at most 64 characters of a value")
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestRegisterDefaults: REG-1 (verifyCode = nodeId, 16-byte PSK) and REG-2
// (timeout 180 s).
func TestRegisterDefaults(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	a := register(t, r, "861000000000001")
	b := register(t, r, "861000000000002")
	require.Regexp(t, uuidV7, a.ID)
	require.Less(t, a.ID, b.ID, "ids sort by registration")
	require.Equal(t, a.NodeID, a.VerifyCode, "verifyCode defaults to nodeId")
	require.Len(t, a.PSK, 16)
	require.Regexp(t, `^[0-9a-f]{32}$`, a.PSK.Hex())
	require.NotEqual(t, a.PSK.Hex(), b.PSK.Hex(), "PSKs are random")
	require.Equal(t, 180*time.Second, a.Timeout)
	require.Equal(t, registry.StatusInactive, a.Status)
	require.False(t, a.Bound)
	require.Equal(t, registry.Endpoint, a.NodeType)
	require.True(t, a.Deadline.Equal(a.CreatedAt.Add(180*time.Second)), "deadline = created + timeout")
	require.Equal(t, []string{"added 861000000000001", "added 861000000000002"}, rec.take())

	never, err := r.Register(ctx, registry.Enrollment{NodeID: "861000000000003", Info: meterInfo, Timeout: secs(0)})
	require.NoError(t, err)
	require.Zero(t, never.Timeout)
	require.True(t, never.Deadline.IsZero(), "timeout 0 never expires")
	max, err := r.Register(ctx, registry.Enrollment{NodeID: "861000000000004", Info: meterInfo, Timeout: secs(2147483647)})
	require.NoError(t, err)
	require.Equal(t, registry.MaxTimeout, max.Timeout)

	key, err := registry.ParsePSK("00112233445566778899AABBCCDDEEFF")
	require.NoError(t, err)
	own, err := r.Register(ctx, registry.Enrollment{NodeID: "861000000000005", VerifyCode: "secret-code", PSK: key, Info: meterInfo})
	require.NoError(t, err)
	require.Equal(t, "00112233445566778899aabbccddeeff", own.PSK.Hex())
	require.Equal(t, "secret-code", own.VerifyCode)

	r2, _ := newRegistry(t, registry.Config{DefaultTimeout: time.Hour})
	d := register(t, r2, "861000000000001")
	require.Equal(t, time.Hour, d.Timeout, "Config.DefaultTimeout")
	r3, _ := newRegistry(t, registry.Config{DefaultTimeout: -1})
	d = register(t, r3, "861000000000001")
	require.Zero(t, d.Timeout, "a negative DefaultTimeout means never")
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := registry.New(nil, catalog, registry.Config{})
	require.Error(t, err)
	_, err = registry.New(registry.NewMemStore(), nil, registry.Config{})
	require.Error(t, err)
	_, err = registry.New(registry.NewMemStore(), catalog, registry.Config{SilencePeriod: -time.Second})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.Contains(t, err.Error(), "SilencePeriod")
	_, err = registry.New(registry.NewMemStore(), catalog, registry.Config{DefaultTimeout: registry.MaxTimeout + time.Second})
	require.ErrorIs(t, err, registry.ErrInvalid)
}

// noIDLookup hides a store's IDLookup: IDByNodeID falls back to reading
// the record.
type noIDLookup struct{ registry.Store }

// TestGetByNodeID: "urn:imei:X" and "X" are the same device (REG-1), for
// GetByNodeID and IDByNodeID, with a store that has IDLookup and one that
// has not.
func TestGetByNodeID(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	plain, err := registry.New(noIDLookup{registry.NewMemStore()}, catalog, registry.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { plain.Close() })
	a := register(t, r, "861234567890123")
	b := register(t, r, "urn:imei:861234567890999")
	pa := register(t, plain, "861234567890123")
	for _, c := range []struct{ ask, want, plain string }{
		{"861234567890123", a.ID, pa.ID},
		{"urn:imei:861234567890123", a.ID, pa.ID},
		{"URN:IMEI:861234567890123", a.ID, pa.ID},
		{"861234567890999", b.ID, ""},
		{"urn:imei:861234567890999", b.ID, ""},
	} {
		d, err := r.GetByNodeID(ctx, c.ask)
		require.NoError(t, err, "GetByNodeID(%q)", c.ask)
		require.Equal(t, c.want, d.ID, "GetByNodeID(%q)", c.ask)
		id, err := r.IDByNodeID(ctx, c.ask)
		require.NoError(t, err, "IDByNodeID(%q)", c.ask)
		require.Equal(t, c.want, id, "IDByNodeID(%q)", c.ask)
		if c.plain != "" {
			id, err := plain.IDByNodeID(ctx, c.ask)
			require.NoError(t, err, "IDByNodeID(%q) without IDLookup", c.ask)
			require.Equal(t, c.plain, id, "IDByNodeID(%q) without IDLookup", c.ask)
		}
	}
	_, err = r.GetByNodeID(ctx, "000")
	require.ErrorIs(t, err, registry.ErrNotFound)
	for _, reg := range []*registry.Registry{r, plain} {
		_, err = reg.IDByNodeID(ctx, "000")
		require.ErrorIs(t, err, registry.ErrNotFound)
		var fe *registry.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, "nodeId", fe.Field)
	}
	got, err := r.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.NodeID, got.NodeID)
	_, err = r.Get(ctx, "nope")
	var fe *registry.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "deviceId", fe.Field)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func TestUpdate(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	d := register(t, r, "861")
	rec.take()
	name, model, mode := "kitchen meter", "WM2", "eDRX"
	got, err := r.Update(ctx, d.ID, registry.Changes{Name: &name, Model: &model, Mode: &mode})
	require.NoError(t, err)
	require.Equal(t, "kitchen meter", got.Info.Name)
	require.Equal(t, "WM2", got.Info.Model)
	require.Equal(t, "eDRX", got.Info.Mode)
	require.Equal(t, "WaterMeter", got.Info.DeviceType, "fields not named stay")
	require.False(t, got.LastModified.Before(d.LastModified))
	require.Equal(t, []string{"info changed 861"}, rec.take())

	_, err = r.Update(ctx, d.ID, registry.Changes{Name: &name})
	require.NoError(t, err)
	require.Empty(t, rec.take(), "no change, no event")

	bad := "NOPE"
	_, err = r.Update(ctx, d.ID, registry.Changes{Model: &bad})
	require.ErrorIs(t, err, registry.ErrUnknownProduct)
	empty := ""
	_, err = r.Update(ctx, d.ID, registry.Changes{DeviceType: &empty})
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.Contains(t, err.Error(), "deviceInfo.deviceType")
	stored, err := r.Get(ctx, d.ID)
	require.NoError(t, err)
	require.Equal(t, "WM2", stored.Info.Model, "a refused Update changes nothing")

	_, err = r.Update(ctx, "nope", registry.Changes{Name: &name})
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// TestDelete: deleting removes credentials at once (REG-5); a gateway
// takes its sub-devices with it; an unknown device is an error.
func TestDelete(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	gw, err := r.Register(ctx, registry.Enrollment{NodeID: "gw", NodeType: registry.Gateway,
		Info: registry.Info{ManufacturerID: "acme", DeviceType: "Gateway", Model: "GW1", ProtocolType: "CoAP"}})
	require.NoError(t, err)
	sub, err := r.Register(ctx, registry.Enrollment{NodeID: "sub", GatewayID: gw.ID, Info: meterInfo})
	require.NoError(t, err)
	other := register(t, r, "other")
	subs, n, err := r.SubDevices(ctx, gw.ID, registry.Query{})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, sub.ID, subs[0].ID, "sub-devices found by gateway (REG-4)")
	_, _, err = r.SubDevices(ctx, other.ID, registry.Query{})
	require.ErrorIs(t, err, registry.ErrGatewayNotFound, "an ENDPOINT is no gateway")
	rec.take()

	key, err := r.PSK(ctx, "sub")
	require.NoError(t, err)
	require.NoError(t, r.Delete(ctx, gw.ID))
	require.Equal(t, []string{"deleted sub", "deleted gw"}, rec.take())
	_, err = r.PSK(ctx, "sub")
	require.ErrorIs(t, err, registry.ErrNotFound, "REG-5: no key after delete")
	_, err = r.Connect(ctx, "sub", registry.Connection{PSK: key})
	require.ErrorIs(t, err, registry.ErrNotFound, "REG-5: cannot connect after delete")
	_, err = r.Get(ctx, other.ID)
	require.NoError(t, err)

	err = r.Delete(ctx, gw.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "deleting an unknown device")
	var fe *registry.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "deviceId", fe.Field)
	require.Equal(t, gw.ID, fe.Value)
}

// TestConnectBinds: the first connection with the right credential binds
// the device, INACTIVE → ONLINE (REG-2, REG-3).
func TestConnectBinds(t *testing.T) {
	r, rec := newRegistry(t, registry.Config{})
	plain, err := r.Register(ctx, registry.Enrollment{NodeID: "861", VerifyCode: "code-861", Info: meterInfo, Security: registry.SecurityNone})
	require.NoError(t, err)
	dtls := register(t, r, "862")
	rec.take()

	_, err = r.Touch(ctx, plain.ID)
	require.ErrorIs(t, err, registry.ErrNotBound, "an unbound device cannot report")

	_, err = r.Connect(ctx, "861", registry.Connection{VerifyCode: "wrong-code"})
	require.ErrorIs(t, err, registry.ErrBadCredential)
	require.NotContains(t, err.Error(), "code-861")
	require.NotContains(t, err.Error(), "wrong-code")
	_, err = r.Connect(ctx, "862", registry.Connection{PSK: registry.PSK("0123456789abcdef")})
	require.ErrorIs(t, err, registry.ErrBadCredential)
	require.NotContains(t, err.Error(), dtls.PSK.Hex())
	require.Empty(t, rec.take(), "failed connections change nothing")

	got, err := r.Connect(ctx, "urn:imei:861", registry.Connection{VerifyCode: "code-861"})
	require.NoError(t, err)
	require.True(t, got.Bound)
	require.Equal(t, registry.StatusOnline, got.Status)
	require.True(t, got.Deadline.Equal(got.LastSeen.Add(25*time.Hour)), "NB-IoT: OFFLINE after 25 h of silence")
	require.Equal(t, []string{"bound 861", "status changed 861 INACTIVE→ONLINE"}, rec.take())

	key, err := r.PSK(ctx, "862")
	require.NoError(t, err)
	_, err = r.Connect(ctx, "862", registry.Connection{PSK: key})
	require.NoError(t, err)
	_, err = r.Connect(ctx, "862", registry.Connection{PSK: key})
	require.NoError(t, err)
	require.Equal(t, []string{"bound 862", "status changed 862 INACTIVE→ONLINE"}, rec.take(), "binding happens once")

	_, err = r.Connect(ctx, "999", registry.Connection{VerifyCode: "x"})
	require.ErrorIs(t, err, registry.ErrNotFound)
	touched, err := r.Touch(ctx, plain.ID)
	require.NoError(t, err)
	require.Equal(t, registry.StatusOnline, touched.Status)
}

func TestListBadQuery(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	for _, c := range []struct {
		q     registry.Query
		field string
	}{
		{registry.Query{Status: "SLEEPING"}, "status"},
		{registry.Query{PageNo: -1, PageSize: 10}, "pageNo"},
		{registry.Query{PageSize: -1}, "pageSize"},
		{registry.Query{NodeType: "HUB"}, "nodeType"},
		{registry.Query{From: time.Unix(100, 0), To: time.Unix(100, 0)}, "startTime/endTime"},
	} {
		_, _, err := r.List(ctx, c.q)
		require.ErrorIs(t, err, registry.ErrInvalid, "List(%+v)", c.q)
		var fe *registry.FieldError
		require.ErrorAs(t, err, &fe)
		require.Equal(t, c.field, fe.Field)
	}
}

// TestGroups: create, delete, add/remove members, list members (REG-4).
func TestGroups(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	a, b, c := register(t, r, "a"), register(t, r, "b"), register(t, r, "c")
	north, err := r.CreateGroup(ctx, "north", "north side")
	require.NoError(t, err)
	_, err = r.CreateGroup(ctx, "north", "")
	require.ErrorIs(t, err, registry.ErrGroupExists)
	var fe *registry.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "name", fe.Field)
	_, err = r.CreateGroup(ctx, "", "")
	require.ErrorIs(t, err, registry.ErrInvalid)
	_, err = r.CreateGroup(ctx, strings.Repeat("n", 65), "")
	require.ErrorIs(t, err, registry.ErrInvalid)

	require.NoError(t, r.AddToGroup(ctx, north.ID, a.ID, c.ID))
	require.NoError(t, r.AddToGroup(ctx, north.ID, a.ID), "adding twice is harmless")
	members, n, err := r.Members(ctx, north.ID, registry.Query{})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{a.ID, c.ID}, []string{members[0].ID, members[1].ID})
	got, err := r.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, []string{north.ID}, got.Groups)

	err = r.AddToGroup(ctx, "nope", b.ID)
	require.ErrorIs(t, err, registry.ErrGroupNotFound, "unknown group")
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "groupId", fe.Field)
	err = r.AddToGroup(ctx, north.ID, "nope", b.ID)
	require.ErrorIs(t, err, registry.ErrNotFound, "unknown device is reported")
	_, n, err = r.Members(ctx, north.ID, registry.Query{})
	require.NoError(t, err)
	require.Equal(t, 3, n, "the known device was added")
	_, _, err = r.Members(ctx, "nope", registry.Query{})
	require.ErrorIs(t, err, registry.ErrGroupNotFound)

	require.NoError(t, r.RemoveFromGroup(ctx, north.ID, a.ID, b.ID))
	members, _, err = r.Members(ctx, north.ID, registry.Query{})
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Equal(t, c.ID, members[0].ID)

	groups, err := r.Groups(ctx)
	require.NoError(t, err)
	require.Len(t, groups, 1)
	require.NoError(t, r.DeleteGroup(ctx, north.ID))
	require.ErrorIs(t, r.DeleteGroup(ctx, north.ID), registry.ErrGroupNotFound)
	got, err = r.Get(ctx, c.ID)
	require.NoError(t, err)
	require.Empty(t, got.Groups, "deleting a group takes it out of its members")
	_, err = r.Group(ctx, north.ID)
	require.ErrorIs(t, err, registry.ErrGroupNotFound)
}

func TestListPaging(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	var all []string
	for i := range 7 {
		all = append(all, register(t, r, "86"+strings.Repeat("0", i)).ID)
	}
	page, n, err := r.List(ctx, registry.Query{PageNo: 1, PageSize: 3})
	require.NoError(t, err)
	require.Equal(t, 7, n)
	require.Equal(t, all[3:6], []string{page[0].ID, page[1].ID, page[2].ID})
	page, _, err = r.List(ctx, registry.Query{PageNo: 2, PageSize: 3})
	require.NoError(t, err)
	require.Len(t, page, 1)
}

func TestClose(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	_, err := r.Register(ctx, registry.Enrollment{NodeID: "1", Info: meterInfo})
	require.ErrorIs(t, err, registry.ErrClosed)
	require.ErrorIs(t, r.Run(ctx), registry.ErrClosed)
}

// TestConnectDefaultVerifyCodeEitherForm: with the default verifyCode (the
// nodeId), a device registered as "urn:imei:X" that presents "X" as its
// endpoint name and verifyCode binds, and the other way round: both forms
// are the same device (REG-1). A verifyCode of the application's own is
// compared exactly.
func TestConnectDefaultVerifyCodeEitherForm(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	registerPlain(t, r, "urn:imei:861000000000011")
	registerPlain(t, r, "861000000000012")
	_, err := r.Register(ctx, registry.Enrollment{NodeID: "861000000000013", VerifyCode: "urn:imei:abc", Info: meterInfo, Security: registry.SecurityNone})
	require.NoError(t, err)
	for _, c := range []struct{ node, code string }{
		{"861000000000011", "861000000000011"},
		{"urn:imei:861000000000012", "URN:IMEI:861000000000012"},
	} {
		d, err := r.Connect(ctx, c.node, registry.Connection{VerifyCode: c.code})
		require.NoError(t, err, "Connect(%q, verifyCode %q)", c.node, c.code)
		require.True(t, d.Bound)
	}
	_, err = r.Connect(ctx, "861000000000013", registry.Connection{VerifyCode: "abc"})
	require.ErrorIs(t, err, registry.ErrBadCredential, "an application's own verifyCode is compared exactly")
	_, err = r.Connect(ctx, "861000000000012", registry.Connection{VerifyCode: "urn:imei:861000000000011"})
	require.ErrorIs(t, err, registry.ErrBadCredential)
}

// TestRegisterBounds: the edges of REG-1's ranges are allowed: a PSK of 8
// and of 64 bytes, a nodeId and a verifyCode of 256 characters (counted
// as characters, not bytes), a group name of 64.
func TestRegisterBounds(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	for i, n := range []int{registry.MinPSKLen, registry.MaxPSKLen} {
		key := make(registry.PSK, n)
		key[0] = byte(i + 1)
		d, err := r.Register(ctx, registry.Enrollment{NodeID: fmt.Sprintf("psk-%d", n), PSK: key, Info: meterInfo})
		require.NoError(t, err, "Register with a %d-byte PSK", n)
		require.Len(t, d.PSK, n)
	}
	long := strings.Repeat("é", registry.MaxNodeIDLen) // 256 characters, 512 bytes
	d, err := r.Register(ctx, registry.Enrollment{NodeID: long, VerifyCode: strings.Repeat("v", registry.MaxFieldLen), Info: meterInfo})
	require.NoError(t, err, "a 256-character nodeId and verifyCode")
	got, err := r.GetByNodeID(ctx, long)
	require.NoError(t, err)
	require.Equal(t, d.ID, got.ID)
	_, err = r.CreateGroup(ctx, strings.Repeat("g", registry.MaxGroupNameLen), "")
	require.NoError(t, err, "a 64-character group name")
}

// TestOwnerGateway: a device keeps the AppID it was registered with; a
// sub-device belongs to its gateway's application, so a gateway of
// another application is refused as an unknown one, at registration and
// when listing its sub-devices for an application (APP-3).
func TestOwnerGateway(t *testing.T) {
	r, _ := newRegistry(t, registry.Config{})
	gw, err := r.Register(ctx, registry.Enrollment{NodeID: "gw", NodeType: registry.Gateway, AppID: "app-a",
		Info: registry.Info{ManufacturerID: "acme", DeviceType: "Gateway", Model: "GW1", ProtocolType: "CoAP"}})
	require.NoError(t, err)
	require.Equal(t, "app-a", gw.AppID)
	sub, err := r.Register(ctx, registry.Enrollment{NodeID: "sub-a", GatewayID: gw.ID, AppID: "app-a", Info: meterInfo})
	require.NoError(t, err)
	got, err := r.Get(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, "app-a", got.AppID)
	_, err = r.Register(ctx, registry.Enrollment{NodeID: "sub-b", GatewayID: gw.ID, AppID: "app-b", Info: meterInfo})
	require.ErrorIs(t, err, registry.ErrGatewayNotFound, "another application's gateway is unknown")
	_, _, err = r.SubDevices(ctx, gw.ID, registry.Query{AppID: "app-b"})
	require.ErrorIs(t, err, registry.ErrGatewayNotFound)
	_, n, err := r.SubDevices(ctx, gw.ID, registry.Query{AppID: "app-a"})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, n, err = r.List(ctx, registry.Query{AppID: "app-b"})
	require.NoError(t, err)
	require.Zero(t, n)
}
