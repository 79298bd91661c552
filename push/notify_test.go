package push

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ptr[T any](v T) *T { return &v }

var (
	battery = ServiceData{ServiceID: "Battery", ServiceType: "Battery",
		Data: json.RawMessage(`{"batteryLevel":66}`), EventTime: "20170211T034003Z"}
	connectivity = ServiceData{ServiceID: "Connectivity", ServiceType: "Connectivity",
		Data: json.RawMessage(`{"signalStrength":72,"cellId":4022250974}`), EventTime: "20170211T034003Z"}
	info = DeviceInfo{NodeID: "863703030000001", Name: "meter-1", ManufacturerID: "Doze", DeviceType: "WaterMeter",
		Model: "WM1", ProtocolType: "CoAP", Status: "ONLINE"}
)

// TestBodiesJSON checks every body against the shapes of docs/api.md: notifyType
// first, the other fields in docs/api.md's order (PSH-3).
func TestBodiesJSON(t *testing.T) {
	infoJSON := `{"nodeId":"863703030000001","name":"meter-1","manufacturerId":"Doze","deviceType":"WaterMeter","model":"WM1","protocolType":"CoAP","status":"ONLINE"}`
	cases := []struct {
		name string
		body any
		want string
	}{
		{"deviceDataChanged", DeviceDataChangedBody{DeviceID: "d1", GatewayID: "d1", Service: battery},
			`{"notifyType":"deviceDataChanged","requestId":null,"deviceId":"d1","gatewayId":"d1","service":{"serviceId":"Battery","serviceType":"Battery","data":{"batteryLevel":66},"eventTime":"20170211T034003Z"}}`},
		{"deviceDatasChanged", DeviceDatasChangedBody{RequestID: ptr("r1"), DeviceID: "d1", GatewayID: "g1", Services: []ServiceData{battery}},
			`{"notifyType":"deviceDatasChanged","requestId":"r1","deviceId":"d1","gatewayId":"g1","services":[{"serviceId":"Battery","serviceType":"Battery","data":{"batteryLevel":66},"eventTime":"20170211T034003Z"}]}`},
		{"deviceDatasChanged empty", DeviceDatasChangedBody{DeviceID: "d1", GatewayID: "g1"},
			`{"notifyType":"deviceDatasChanged","requestId":null,"deviceId":"d1","gatewayId":"g1","services":[]}`},
		{"bindDevice", BindDeviceBody{DeviceID: "d1", ResultCode: BindSucceeded, DeviceInfo: info},
			`{"notifyType":"bindDevice","deviceId":"d1","resultCode":"succeeded","deviceInfo":` + infoJSON + `}`},
		{"deviceAdded", DeviceAddedBody{DeviceID: "d1", GatewayID: "d1", NodeType: "ENDPOINT", DeviceInfo: info},
			`{"notifyType":"deviceAdded","deviceId":"d1","gatewayId":"d1","nodeType":"ENDPOINT","deviceInfo":` + infoJSON + `}`},
		{"deviceDeleted", DeviceDeletedBody{DeviceID: "d1", GatewayID: "d1"},
			`{"notifyType":"deviceDeleted","deviceId":"d1","gatewayId":"d1"}`},
		{"deviceInfoChanged", DeviceInfoChangedBody{DeviceID: "d1", GatewayID: "d1", DeviceInfo: DeviceInfo{Name: "n2"}},
			`{"notifyType":"deviceInfoChanged","deviceId":"d1","gatewayId":"d1","deviceInfo":{"name":"n2"}}`},
		{"swUpgradeStateChangeNotify", SwUpgradeStateChangeBody{DeviceID: "d1", AppID: "a1", OperationID: "o1", SubOperationID: "s1", SwUpgradeState: "downloading"},
			`{"notifyType":"swUpgradeStateChangeNotify","deviceId":"d1","appId":"a1","operationId":"o1","subOperationId":"s1","swUpgradeState":"downloading"}`},
		{"swUpgradeResultNotify", SwUpgradeResultBody{DeviceID: "d1", AppID: "a1", OperationID: "o1", SubOperationID: "s1", CurVersion: "1.1", TargetVersion: "1.1", SourceVersion: "1.0", SwUpgradeResult: "SUCCESS", UpgradeTime: "20261125T080000Z", ResultDesc: "ok", ErrorCode: "0"},
			`{"notifyType":"swUpgradeResultNotify","deviceId":"d1","appId":"a1","operationId":"o1","subOperationId":"s1","curVersion":"1.1","targetVersion":"1.1","sourceVersion":"1.0","swUpgradeResult":"SUCCESS","upgradeTime":"20261125T080000Z","resultDesc":"ok","errorCode":"0"}`},
		{"fwUpgradeStateChangeNotify", FwUpgradeStateChangeBody{DeviceID: "d1", AppID: "a1", OperationID: "o1", SubOperationID: "s1", Step: "1", StepDesc: "downloading"},
			`{"notifyType":"fwUpgradeStateChangeNotify","deviceId":"d1","appId":"a1","operationId":"o1","subOperationId":"s1","step":"1","stepDesc":"downloading"}`},
		{"fwUpgradeResultNotify", FwUpgradeResultBody{DeviceID: "d1", AppID: "a1", OperationID: "o1", SubOperationID: "s1", CurVersion: "2", TargetVersion: "2", SourceVersion: "1", Status: "SUCCESS", StatusDesc: "ok", UpgradeTime: "20261125T080000Z"},
			`{"notifyType":"fwUpgradeResultNotify","deviceId":"d1","appId":"a1","operationId":"o1","subOperationId":"s1","curVersion":"2","targetVersion":"2","sourceVersion":"1","status":"SUCCESS","statusDesc":"ok","upgradeTime":"20261125T080000Z"}`},
		{"lwm2mNotification", LwM2MNotificationBody{DeviceID: "d1", GatewayID: "d1", Path: "/3/0/9",
			Value: json.RawMessage(`{"kind":"singleResource","id":9,"type":"INTEGER","value":87}`), EventTime: "20261207T000000Z"},
			`{"notifyType":"lwm2mNotification","deviceId":"d1","gatewayId":"d1","path":"/3/0/9","value":{"kind":"singleResource","id":9,"type":"INTEGER","value":87},"eventTime":"20261207T000000Z"}`},
		{"generic", Body{Type: DeviceModelAdded, Fields: json.RawMessage(` {"appId":"a1","model":"WM1"}`)},
			`{"notifyType":"deviceModelAdded","appId":"a1","model":"WM1"}`},
		{"generic empty", Body{Type: RuleEvent},
			`{"notifyType":"ruleEvent"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := json.Marshal(c.body)
			require.NoError(t, err)
			require.Equal(t, c.want, string(got))
			require.True(t, json.Valid(got))
		})
	}
}

// TestEveryNotifyTypeHasABody checks that each PSH-1 type can be encoded
// with notifyType first.
func TestEveryNotifyTypeHasABody(t *testing.T) {
	typed := map[NotifyType]Notification{
		DeviceDataChanged: DeviceDataChangedBody{}, DeviceDatasChanged: DeviceDatasChangedBody{}, BindDevice: BindDeviceBody{},
		DeviceAdded: DeviceAddedBody{}, DeviceDeleted: DeviceDeletedBody{}, DeviceInfoChanged: DeviceInfoChangedBody{},
		SwUpgradeStateChangeNotify: SwUpgradeStateChangeBody{}, SwUpgradeResultNotify: SwUpgradeResultBody{},
		FwUpgradeStateChangeNotify: FwUpgradeStateChangeBody{}, FwUpgradeResultNotify: FwUpgradeResultBody{},
		LwM2MNotification: LwM2MNotificationBody{},
	}
	require.Len(t, NotifyTypes(), 20, "the 18 of PSH-1 and ours: lwm2mOperationResult, lwm2mNotification")
	for _, nt := range NotifyTypes() {
		n, ok := typed[nt]
		if !ok {
			n = Body{Type: nt, Fields: json.RawMessage(`{"x":1}`)}
		}
		require.Equal(t, nt, n.NotifyType())
		b, err := json.Marshal(n)
		require.NoError(t, err)
		require.True(t, json.Valid(b), "%s: %s", nt, b)
		require.Regexp(t, `^\{"notifyType":"`+string(nt)+`"[,}]`, string(b))
	}
}

func TestBodyFieldsMustBeObject(t *testing.T) {
	_, err := json.Marshal(Body{Type: RuleEvent, Fields: json.RawMessage(`[1,2]`)})
	require.ErrorContains(t, err, "must be a JSON object")
}

// TestReportSplit checks PSH-3 (§5.13, §5.16): deviceDataChanged splits a
// two-service report into two pushes, deviceDatasChanged keeps it whole.
func TestReportSplit(t *testing.T) {
	r := Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{battery, connectivity}}
	one := r.DataChanged()
	require.Len(t, one, 2)
	require.Equal(t, "Battery", one[0].Service.ServiceID)
	require.Equal(t, "Connectivity", one[1].Service.ServiceID)
	for _, b := range one {
		require.Equal(t, "d1", b.DeviceID)
		require.Nil(t, b.RequestID)
	}
	all := r.DatasChanged()
	require.Len(t, all.Services, 2)
	got, err := json.Marshal(all)
	require.NoError(t, err)
	require.JSONEq(t, `{"notifyType":"deviceDatasChanged","requestId":null,"deviceId":"d1","gatewayId":"d1","services":[
		{"serviceId":"Battery","serviceType":"Battery","data":{"batteryLevel":66},"eventTime":"20170211T034003Z"},
		{"serviceId":"Connectivity","serviceType":"Connectivity","data":{"signalStrength":72,"cellId":4022250974},"eventTime":"20170211T034003Z"}]}`, string(got))
}

func TestParseNotifyType(t *testing.T) {
	nt, err := ParseNotifyType("deviceDatasChanged")
	require.NoError(t, err)
	require.Equal(t, DeviceDatasChanged, nt)
	_, err = ParseNotifyType("deviceDataschanged")
	require.ErrorIs(t, err, ErrNotifyType)
	require.ErrorContains(t, err, "allowed: bindDevice, deviceAdded")
}

func TestFormatTime(t *testing.T) {
	ts := time.Date(2017, 2, 11, 11, 40, 3, 0, time.FixedZone("CST", 8*3600))
	require.Equal(t, "20170211T034003Z", FormatTime(ts))
}

// TestRawData: a payload without a codec is pushed as
// {"rawData":"<base64>"} under serviceId and serviceType RawData (APP-5),
// and the base64 decodes to the payload (FAQ §6.3), for every length.
func TestRawData(t *testing.T) {
	at := time.Date(2024, 3, 1, 12, 0, 5, 0, time.UTC)
	sd := RawData([]byte{0x01, 0xFF, 0x00, 0x7E}, at)
	require.Equal(t, "RawData", sd.ServiceID)
	require.Equal(t, "RawData", sd.ServiceType)
	require.Equal(t, "20240301T120005Z", sd.EventTime)
	require.JSONEq(t, `{"rawData":"Af8Afg=="}`, string(sd.Data))

	b, err := Report{DeviceID: "d1", GatewayID: "d1", Services: []ServiceData{sd}}.DataChanged()[0].MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"notifyType":"deviceDataChanged","requestId":null,"deviceId":"d1","gatewayId":"d1",
		"service":{"serviceId":"RawData","serviceType":"RawData","data":{"rawData":"Af8Afg=="},"eventTime":"20240301T120005Z"}}`, string(b))

	for n := range 8 {
		payload := bytes.Repeat([]byte{byte(n), 0xA5}, n)[:n]
		var got struct{ RawData string }
		require.NoError(t, json.Unmarshal(RawData(payload, at).Data, &got))
		dec, err := base64.StdEncoding.DecodeString(got.RawData)
		require.NoError(t, err, "%d bytes", n)
		require.Equal(t, payload, dec, "%d bytes round-trip", n)
	}
}

// TestZeroBodiesJSON pins the exact bytes of every notify body's zero
// value: notifyType first, every field present (null, "" or {}), in
// declaration order.
func TestZeroBodiesJSON(t *testing.T) {
	cases := []struct {
		body Notification
		want string
	}{
		{DeviceDataChangedBody{}, `{"notifyType":"deviceDataChanged","requestId":null,"deviceId":"","gatewayId":"","service":{"serviceId":"","serviceType":"","data":null,"eventTime":""}}`},
		{DeviceDatasChangedBody{}, `{"notifyType":"deviceDatasChanged","requestId":null,"deviceId":"","gatewayId":"","services":[]}`},
		{BindDeviceBody{}, `{"notifyType":"bindDevice","deviceId":"","resultCode":"","deviceInfo":{}}`},
		{DeviceAddedBody{}, `{"notifyType":"deviceAdded","deviceId":"","gatewayId":"","nodeType":"","deviceInfo":{}}`},
		{DeviceDeletedBody{}, `{"notifyType":"deviceDeleted","deviceId":"","gatewayId":""}`},
		{DeviceInfoChangedBody{}, `{"notifyType":"deviceInfoChanged","deviceId":"","gatewayId":"","deviceInfo":{}}`},
		{SwUpgradeStateChangeBody{}, `{"notifyType":"swUpgradeStateChangeNotify","deviceId":"","appId":"","operationId":"","subOperationId":"","swUpgradeState":""}`},
		{SwUpgradeResultBody{}, `{"notifyType":"swUpgradeResultNotify","deviceId":"","appId":"","operationId":"","subOperationId":"","curVersion":"","targetVersion":"","sourceVersion":"","swUpgradeResult":"","upgradeTime":"","resultDesc":"","errorCode":""}`},
		{FwUpgradeStateChangeBody{}, `{"notifyType":"fwUpgradeStateChangeNotify","deviceId":"","appId":"","operationId":"","subOperationId":"","step":"","stepDesc":""}`},
		{FwUpgradeResultBody{}, `{"notifyType":"fwUpgradeResultNotify","deviceId":"","appId":"","operationId":"","subOperationId":"","curVersion":"","targetVersion":"","sourceVersion":"","status":"","statusDesc":"","upgradeTime":""}`},
		{Body{}, `{"notifyType":""}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.body)
		require.NoError(t, err)
		require.Equal(t, c.want, string(got), "%T", c.body)
		direct, err := c.body.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, c.want, string(direct), "%T.MarshalJSON", c.body)
	}
	all := DeviceInfo{NodeID: "n", Name: "m", Description: "d", ManufacturerID: "mi", ManufacturerName: "mn", DeviceType: "dt",
		Model: "mo", ProtocolType: "p", Status: "s", StatusDetail: "sd", SwVersion: "sw", FwVersion: "fw", HwVersion: "hw",
		SignalStrength: "ss", BatteryLevel: "b"}
	got, err := json.Marshal(BindDeviceBody{DeviceID: "d1", ResultCode: BindExpired, DeviceInfo: all})
	require.NoError(t, err)
	require.Equal(t, `{"notifyType":"bindDevice","deviceId":"d1","resultCode":"expired","deviceInfo":{"nodeId":"n","name":"m","description":"d","manufacturerId":"mi","manufacturerName":"mn","deviceType":"dt","model":"mo","protocolType":"p","status":"s","statusDetail":"sd","swVersion":"sw","fwVersion":"fw","hwVersion":"hw","signalStrength":"ss","batteryLevel":"b"}}`, string(got))
}

// TestNotifyTypesIsACopy: changing the returned slice changes nothing.
func TestNotifyTypesIsACopy(t *testing.T) {
	a := NotifyTypes()
	a[0] = "x"
	require.Equal(t, BindDevice, NotifyTypes()[0])
	require.True(t, BindDevice.Valid())
}
