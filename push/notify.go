package push

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/doze-io/doze/internal/apitime"
)

// NotifyType names a kind of notification an application subscribes to (PSH-1).
type NotifyType string

// The notify types of PSH-1.
const (
	BindDevice                                 NotifyType = "bindDevice"
	DeviceAdded                                NotifyType = "deviceAdded"
	DeviceInfoChanged                          NotifyType = "deviceInfoChanged"
	DeviceDataChanged                          NotifyType = "deviceDataChanged"
	DeviceDatasChanged                         NotifyType = "deviceDatasChanged"
	DeviceDeleted                              NotifyType = "deviceDeleted"
	MessageConfirm                             NotifyType = "messageConfirm"
	CommandRsp                                 NotifyType = "commandRsp"
	DeviceEvent                                NotifyType = "deviceEvent"
	ServiceInfoChanged                         NotifyType = "serviceInfoChanged"
	RuleEvent                                  NotifyType = "ruleEvent"
	DeviceModelAdded                           NotifyType = "deviceModelAdded"
	DeviceModelDeleted                         NotifyType = "deviceModelDeleted"
	DeviceDesiredPropertiesModifyStatusChanged NotifyType = "deviceDesiredPropertiesModifyStatusChanged"
	SwUpgradeStateChangeNotify                 NotifyType = "swUpgradeStateChangeNotify"
	SwUpgradeResultNotify                      NotifyType = "swUpgradeResultNotify"
	FwUpgradeStateChangeNotify                 NotifyType = "fwUpgradeStateChangeNotify"
	FwUpgradeResultNotify                      NotifyType = "fwUpgradeResultNotify"

	// Ours (LWM-11): the end of a queued LwM2M operation.
	LwM2MOperationResult NotifyType = "lwm2mOperationResult"
	// Ours (LWM-12): LwM2M values a device sent that no product mapping
	// turns into a report.
	LwM2MNotification NotifyType = "lwm2mNotification"
)

// notifyTypes is every notify type of PSH-1 in the order of docs/rules.md, then ours.
var notifyTypes = [...]NotifyType{
	BindDevice, DeviceAdded, DeviceInfoChanged, DeviceDataChanged, DeviceDatasChanged, DeviceDeleted,
	MessageConfirm, CommandRsp, DeviceEvent, ServiceInfoChanged, RuleEvent, DeviceModelAdded,
	DeviceModelDeleted, DeviceDesiredPropertiesModifyStatusChanged,
	SwUpgradeStateChangeNotify, SwUpgradeResultNotify, FwUpgradeStateChangeNotify, FwUpgradeResultNotify,
	LwM2MOperationResult, LwM2MNotification,
}

// NotifyTypes returns every notify type of PSH-1 in the order of docs/rules.md, then
// ours, in a new slice.
func NotifyTypes() []NotifyType { return slices.Clone(notifyTypes[:]) }

// Valid reports whether t is one of NotifyTypes.
func (t NotifyType) Valid() bool { return slices.Contains(notifyTypes[:], t) }

// ParseNotifyType returns s as a NotifyType, or a *NotifyTypeError listing
// the allowed names.
func ParseNotifyType(s string) (NotifyType, error) {
	t := NotifyType(s)
	if !t.Valid() {
		return "", &NotifyTypeError{NotifyType: s}
	}
	return t, nil
}

// FormatTime formats t as every time in notification bodies is written
// (eventTime, upgradeTime): yyyyMMdd'T'HHmmss'Z' in UTC.
func FormatTime(t time.Time) string { return apitime.Format(t) }

// Notification is a body pushed to subscribers of one notify type. Its JSON
// starts with "notifyType" (PSH-3).
type Notification interface {
	NotifyType() NotifyType
	json.Marshaler
}

// plainTypes caches, per body type, a struct type with the same fields and
// tags but no methods (reflect.Type → reflect.Type), for marshalBody.
var plainTypes sync.Map

// marshalBody is the MarshalJSON of every fixed-shape body: n's fields in
// declaration order after "notifyType":n.NotifyType(). It encodes n as a
// struct with the same fields and no methods, so that n's own MarshalJSON
// is not called again.
func marshalBody(n Notification) ([]byte, error) {
	v := reflect.ValueOf(n)
	p, ok := plainTypes.Load(v.Type())
	if !ok {
		fields := make([]reflect.StructField, v.NumField())
		for i := range fields {
			fields[i] = v.Type().Field(i)
		}
		p, _ = plainTypes.LoadOrStore(v.Type(), reflect.StructOf(fields))
	}
	return marshalWithType(n.NotifyType(), v.Convert(p.(reflect.Type)).Interface())
}

// marshalWithType encodes v (a struct without a notifyType field) and puts
// "notifyType":t in front of its other fields.
func marshalWithType(t NotifyType, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(t)+16)
	out = append(out, `{"notifyType":`...)
	out = append(out, '"')
	out = append(out, t...)
	out = append(out, '"')
	if !bytes.Equal(b, []byte("{}")) {
		out = append(out, ',')
	}
	return append(out, b[1:]...), nil
}

// ServiceData is one service of a device report.
type ServiceData struct {
	ServiceID   string          `json:"serviceId"`
	ServiceType string          `json:"serviceType"`
	Data        json.RawMessage `json:"data"`      // the decoded properties, a JSON object
	EventTime   string          `json:"eventTime"` // FormatTime of the report
}

// Report is one device report with every service it carried. Split it with
// DataChanged (one push per service) or wrap it whole with DatasChanged
// (PSH-3, FAQ §5.13); Engine.PublishReport does both for the subscribers.
type Report struct {
	RequestID *string // nil encodes as null
	DeviceID  string
	GatewayID string
	Services  []ServiceData
}

// RawDataService is the serviceId and serviceType under which a payload
// that no codec decodes is reported (APP-5, FAQ §2.8, §6.3).
const RawDataService = "RawData"

// RawData returns the service data of a binary payload that no codec
// decodes: {"rawData":"<base64>"} (standard base64, padded) under
// RawDataService, at time at. Decoding the base64 gives payload back.
func RawData(payload []byte, at time.Time) ServiceData {
	b := make([]byte, 0, base64.StdEncoding.EncodedLen(len(payload))+14)
	b = append(b, `{"rawData":"`...)
	b = base64.StdEncoding.AppendEncode(b, payload)
	b = append(b, `"}`...)
	return ServiceData{ServiceID: RawDataService, ServiceType: RawDataService, Data: b, EventTime: FormatTime(at)}
}

// DataChanged splits r into one deviceDataChanged body per service (§5.13, §5.16).
func (r Report) DataChanged() []DeviceDataChangedBody {
	out := make([]DeviceDataChangedBody, len(r.Services))
	for i, s := range r.Services {
		out[i] = DeviceDataChangedBody{RequestID: r.RequestID, DeviceID: r.DeviceID, GatewayID: r.GatewayID, Service: s}
	}
	return out
}

// DatasChanged wraps every service of r into one deviceDatasChanged body.
func (r Report) DatasChanged() DeviceDatasChangedBody {
	return DeviceDatasChangedBody(r)
}

// DeviceDataChangedBody is a deviceDataChanged push: one service of a report.
//
//	{"notifyType":"deviceDataChanged","requestId":null,"deviceId":"…","gatewayId":"…","service":{…}}
type DeviceDataChangedBody struct {
	RequestID *string     `json:"requestId"`
	DeviceID  string      `json:"deviceId"`
	GatewayID string      `json:"gatewayId"`
	Service   ServiceData `json:"service"`
}

// NotifyType returns DeviceDataChanged.
func (DeviceDataChangedBody) NotifyType() NotifyType { return DeviceDataChanged }

// MarshalJSON encodes the body with notifyType first.
func (b DeviceDataChangedBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// DeviceDatasChangedBody is a deviceDatasChanged push: every service of one report.
//
//	{"notifyType":"deviceDatasChanged","requestId":"…","deviceId":"…","gatewayId":"…","services":[…]}
type DeviceDatasChangedBody struct {
	RequestID *string       `json:"requestId"`
	DeviceID  string        `json:"deviceId"`
	GatewayID string        `json:"gatewayId"`
	Services  []ServiceData `json:"services"`
}

// NotifyType returns DeviceDatasChanged.
func (DeviceDatasChangedBody) NotifyType() NotifyType { return DeviceDatasChanged }

// MarshalJSON encodes the body with notifyType first.
func (b DeviceDatasChangedBody) MarshalJSON() ([]byte, error) {
	if b.Services == nil {
		b.Services = []ServiceData{}
	}
	return marshalBody(b)
}

// DeviceInfo is the deviceInfo object of device notifications. Empty fields
// are left out.
type DeviceInfo struct {
	NodeID           string `json:"nodeId,omitempty"`
	Name             string `json:"name,omitempty"`
	Description      string `json:"description,omitempty"`
	ManufacturerID   string `json:"manufacturerId,omitempty"`
	ManufacturerName string `json:"manufacturerName,omitempty"`
	DeviceType       string `json:"deviceType,omitempty"`
	Model            string `json:"model,omitempty"`
	ProtocolType     string `json:"protocolType,omitempty"`
	Status           string `json:"status,omitempty"`
	StatusDetail     string `json:"statusDetail,omitempty"`
	SwVersion        string `json:"swVersion,omitempty"`
	FwVersion        string `json:"fwVersion,omitempty"`
	HwVersion        string `json:"hwVersion,omitempty"`
	SignalStrength   string `json:"signalStrength,omitempty"`
	BatteryLevel     string `json:"batteryLevel,omitempty"`
}

// Results of bindDevice.
const (
	BindSucceeded = "succeeded"
	BindExpired   = "expired"
)

// BindDeviceBody is a bindDevice push: a device bound (or its binding time ran out).
//
//	{"notifyType":"bindDevice","deviceId":"…","resultCode":"succeeded","deviceInfo":{…}}
type BindDeviceBody struct {
	DeviceID   string     `json:"deviceId"`
	ResultCode string     `json:"resultCode"` // BindSucceeded or BindExpired
	DeviceInfo DeviceInfo `json:"deviceInfo"`
}

// NotifyType returns BindDevice.
func (BindDeviceBody) NotifyType() NotifyType { return BindDevice }

// MarshalJSON encodes the body with notifyType first.
func (b BindDeviceBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// DeviceAddedBody is a deviceAdded push.
//
//	{"notifyType":"deviceAdded","deviceId":"…","gatewayId":"…","nodeType":"ENDPOINT","deviceInfo":{…}}
type DeviceAddedBody struct {
	DeviceID   string     `json:"deviceId"`
	GatewayID  string     `json:"gatewayId"`
	NodeType   string     `json:"nodeType"` // ENDPOINT, GATEWAY or UNKNOWN
	DeviceInfo DeviceInfo `json:"deviceInfo"`
}

// NotifyType returns DeviceAdded.
func (DeviceAddedBody) NotifyType() NotifyType { return DeviceAdded }

// MarshalJSON encodes the body with notifyType first.
func (b DeviceAddedBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// DeviceDeletedBody is a deviceDeleted push.
//
//	{"notifyType":"deviceDeleted","deviceId":"…","gatewayId":"…"}
type DeviceDeletedBody struct {
	DeviceID  string `json:"deviceId"`
	GatewayID string `json:"gatewayId"`
}

// NotifyType returns DeviceDeleted.
func (DeviceDeletedBody) NotifyType() NotifyType { return DeviceDeleted }

// MarshalJSON encodes the body with notifyType first.
func (b DeviceDeletedBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// DeviceInfoChangedBody is a deviceInfoChanged push.
//
//	{"notifyType":"deviceInfoChanged","deviceId":"…","gatewayId":"…","deviceInfo":{…}}
type DeviceInfoChangedBody struct {
	DeviceID   string     `json:"deviceId"`
	GatewayID  string     `json:"gatewayId"`
	DeviceInfo DeviceInfo `json:"deviceInfo"`
}

// NotifyType returns DeviceInfoChanged.
func (DeviceInfoChangedBody) NotifyType() NotifyType { return DeviceInfoChanged }

// MarshalJSON encodes the body with notifyType first.
func (b DeviceInfoChangedBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// SwUpgradeStateChangeBody is a swUpgradeStateChangeNotify push.
//
//	{"notifyType":"swUpgradeStateChangeNotify","deviceId":"…","appId":"…","operationId":"…","subOperationId":"…","swUpgradeState":"downloading"}
type SwUpgradeStateChangeBody struct {
	DeviceID       string `json:"deviceId"`
	AppID          string `json:"appId"`
	OperationID    string `json:"operationId"`
	SubOperationID string `json:"subOperationId"`
	SwUpgradeState string `json:"swUpgradeState"` // downloading, downloaded, updating, idle
}

// NotifyType returns SwUpgradeStateChangeNotify.
func (SwUpgradeStateChangeBody) NotifyType() NotifyType { return SwUpgradeStateChangeNotify }

// MarshalJSON encodes the body with notifyType first.
func (b SwUpgradeStateChangeBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// SwUpgradeResultBody is a swUpgradeResultNotify push.
//
//	{"notifyType":"swUpgradeResultNotify","deviceId":"…","appId":"…","operationId":"…","subOperationId":"…","curVersion":"…","targetVersion":"…","sourceVersion":"…","swUpgradeResult":"SUCCESS","upgradeTime":"…","resultDesc":"…","errorCode":"…"}
type SwUpgradeResultBody struct {
	DeviceID        string `json:"deviceId"`
	AppID           string `json:"appId"`
	OperationID     string `json:"operationId"`
	SubOperationID  string `json:"subOperationId"`
	CurVersion      string `json:"curVersion"`
	TargetVersion   string `json:"targetVersion"`
	SourceVersion   string `json:"sourceVersion"`
	SwUpgradeResult string `json:"swUpgradeResult"` // SUCCESS or FAIL
	UpgradeTime     string `json:"upgradeTime"`     // FormatTime
	ResultDesc      string `json:"resultDesc"`
	ErrorCode       string `json:"errorCode"`
}

// NotifyType returns SwUpgradeResultNotify.
func (SwUpgradeResultBody) NotifyType() NotifyType { return SwUpgradeResultNotify }

// MarshalJSON encodes the body with notifyType first.
func (b SwUpgradeResultBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// FwUpgradeStateChangeBody is a fwUpgradeStateChangeNotify push.
//
//	{"notifyType":"fwUpgradeStateChangeNotify","deviceId":"…","appId":"…","operationId":"…","subOperationId":"…","step":"1","stepDesc":"downloading"}
type FwUpgradeStateChangeBody struct {
	DeviceID       string `json:"deviceId"`
	AppID          string `json:"appId"`
	OperationID    string `json:"operationId"`
	SubOperationID string `json:"subOperationId"`
	Step           string `json:"step"`     // "0" idle, "1" downloading, "2" downloaded, "3" updating
	StepDesc       string `json:"stepDesc"` // the step in words
}

// NotifyType returns FwUpgradeStateChangeNotify.
func (FwUpgradeStateChangeBody) NotifyType() NotifyType { return FwUpgradeStateChangeNotify }

// MarshalJSON encodes the body with notifyType first.
func (b FwUpgradeStateChangeBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// FwUpgradeResultBody is a fwUpgradeResultNotify push. docs/api.md shows no
// sample; the fields follow the public documentation of the original
// platform and mirror SwUpgradeResultBody.
//
//	{"notifyType":"fwUpgradeResultNotify","deviceId":"…","appId":"…","operationId":"…","subOperationId":"…","curVersion":"…","targetVersion":"…","sourceVersion":"…","status":"SUCCESS","statusDesc":"…","upgradeTime":"…"}
type FwUpgradeResultBody struct {
	DeviceID       string `json:"deviceId"`
	AppID          string `json:"appId"`
	OperationID    string `json:"operationId"`
	SubOperationID string `json:"subOperationId"`
	CurVersion     string `json:"curVersion"`
	TargetVersion  string `json:"targetVersion"`
	SourceVersion  string `json:"sourceVersion"`
	Status         string `json:"status"` // SUCCESS or FAIL
	StatusDesc     string `json:"statusDesc"`
	UpgradeTime    string `json:"upgradeTime"` // FormatTime
}

// NotifyType returns FwUpgradeResultNotify.
func (FwUpgradeResultBody) NotifyType() NotifyType { return FwUpgradeResultNotify }

// MarshalJSON encodes the body with notifyType first.
func (b FwUpgradeResultBody) MarshalJSON() ([]byte, error) { return marshalBody(b) }

// Body is a notification of any notify type whose fields the platform
// composes itself: messageConfirm, commandRsp, deviceEvent,
// serviceInfoChanged, ruleEvent, deviceModelAdded, deviceModelDeleted and
// deviceDesiredPropertiesModifyStatusChanged have no fixed shape in docs/api.md.
// Fields must be a JSON object (or nil for none); its members follow
// "notifyType" in their own order.
//
//	push.Body{Type: push.DeviceModelAdded, Fields: json.RawMessage(`{"appId":"a1","model":"WM1"}`)}
type Body struct {
	Type   NotifyType
	Fields json.RawMessage
}

// NotifyType returns b.Type.
func (b Body) NotifyType() NotifyType { return b.Type }

// MarshalJSON encodes b.Fields with "notifyType" in front.
func (b Body) MarshalJSON() ([]byte, error) {
	if len(b.Fields) == 0 {
		return marshalWithType(b.Type, struct{}{})
	}
	if t := bytes.TrimSpace(b.Fields); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("push: Body.Fields of %s must be a JSON object, got %.20q", b.Type, b.Fields)
	}
	return marshalWithType(b.Type, b.Fields)
}

// LwM2MNotificationBody is an lwm2mNotification push (ours, LWM-12): the
// values of one LwM2M path a device notified or sent that no product
// mapping turns into a report. Value is the node at Path in Leshan's JSON
// ({"kind":"singleResource","id":9,"type":"INTEGER","value":87}, or an
// instance or multiple resource), as the LwM2M API shows a read.
//
//	{"notifyType":"lwm2mNotification","deviceId":"…","gatewayId":"…","path":"/3/0/9","value":{…},"eventTime":"20261207T000000Z"}
type LwM2MNotificationBody struct {
	DeviceID  string          `json:"deviceId"`
	GatewayID string          `json:"gatewayId"`
	Path      string          `json:"path"`
	Value     json.RawMessage `json:"value"`     // a JSON object: the node at Path
	EventTime string          `json:"eventTime"` // FormatTime of when the platform got it
}

// NotifyType returns LwM2MNotification.
func (LwM2MNotificationBody) NotifyType() NotifyType { return LwM2MNotification }

// MarshalJSON encodes the body with notifyType first; a Value that is not
// JSON is an error.
func (b LwM2MNotificationBody) MarshalJSON() ([]byte, error) {
	if len(b.Value) == 0 {
		b.Value = json.RawMessage("null")
	}
	return marshalBody(b)
}
