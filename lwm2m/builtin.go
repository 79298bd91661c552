package lwm2m

// The objects built into the package, written from the OMA LwM2M 1.1
// specification (Core Appendix E) and the OMA object registry.

// Resource ids of object 5 Firmware Update used by the firmware flow.
const (
	FirmwarePackage        = 0 // Opaque, W: the image, written in blocks
	FirmwarePackageURI     = 1 // String, RW: where the client downloads the image
	FirmwareUpdate         = 2 // E: install the downloaded image
	FirmwareState          = 3 // Integer, R: see FirmwareState* values
	FirmwareUpdateResult   = 5 // Integer, R: see FirmwareResult* values
	FirmwarePkgName        = 6 // String, R
	FirmwarePkgVersion     = 7 // String, R
	FirmwareProtocols      = 8 // Integer, R, multiple: supported download protocols
	FirmwareDeliveryMethod = 9 // Integer, R: 0 pull, 1 push, 2 both
)

// Values of /5/x/3 State (LwM2M 1.1 Core E.6).
const (
	FirmwareStateIdle        = 0 // before downloading, or after a successful update
	FirmwareStateDownloading = 1
	FirmwareStateDownloaded  = 2
	FirmwareStateUpdating    = 3
)

// Values of /5/x/5 Update Result (LwM2M 1.1 Core E.6).
const (
	FirmwareResultInitial             = 0 // initial value; set when a download or update starts
	FirmwareResultSuccess             = 1 // firmware updated successfully
	FirmwareResultNoFlash             = 2 // not enough flash memory for the package
	FirmwareResultOutOfRAM            = 3 // out of RAM while downloading
	FirmwareResultConnectionLost      = 4 // connection lost while downloading
	FirmwareResultIntegrityFailure    = 5 // integrity check of the package failed
	FirmwareResultUnsupportedPackage  = 6 // unsupported package type
	FirmwareResultInvalidURI          = 7 // invalid URI
	FirmwareResultUpdateFailed        = 8 // firmware update failed
	FirmwareResultUnsupportedProtocol = 9 // unsupported download protocol (LwM2M 1.1)
)

// Object ids of the built-in objects.
const (
	ObjectSecurity      = 0
	ObjectServer        = 1
	ObjectDevice        = 3
	ObjectConnectivity  = 4
	ObjectFirmware      = 5
	ObjectBinaryAppData = 19
)

func res(id uint16, name string, ops Operations, multiple, mandatory bool, t Type, rng, units, desc string) ResourceDef {
	return ResourceDef{ID: id, Name: name, Operations: ops, Multiple: multiple, Mandatory: mandatory,
		Type: t, Range: rng, Units: units, Description: desc}
}

// BuiltinObjects returns fresh copies of the built-in object definitions:
// 0 LwM2M Security, 1 LwM2M Server, 3 Device, 4 Connectivity Monitoring,
// 5 Firmware Update (as in LwM2M 1.1: Update Result 0–9, State 0–3) and 19
// BinaryAppDataContainer (the data channel of LWM-5).
func BuiltinObjects() []ObjectDef {
	const (
		r   = OpRead
		w   = OpWrite
		rw  = OpRead | OpWrite
		e   = OpExecute
		one = false // single resource
		mul = true  // multiple resource
		opt = false
		man = true
	)
	return []ObjectDef{
		{
			ID: 0, Name: "LWM2M Security", URN: "urn:oma:lwm2m:oma:0:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: true, Mandatory: true,
			Description: "Keys and parameters a client needs to reach an LwM2M server or the bootstrap server.",
			Resources: []ResourceDef{
				res(0, "LWM2M Server URI", 0, one, man, TypeString, "0..255", "", "URI of the server, coaps://host:port for DTLS."),
				res(1, "Bootstrap-Server", 0, one, man, TypeBoolean, "", "", "Whether this instance describes the bootstrap server."),
				res(2, "Security Mode", 0, one, man, TypeInteger, "0..4", "", "0 PSK, 1 RPK, 2 certificate, 3 NoSec, 4 certificate with EST."),
				res(3, "Public Key or Identity", 0, one, man, TypeOpaque, "", "", "The client's certificate, public key or PSK identity."),
				res(4, "Server Public Key", 0, one, man, TypeOpaque, "", "", "The server's certificate or public key."),
				res(5, "Secret Key", 0, one, man, TypeOpaque, "", "", "The client's private key or PSK."),
				res(6, "SMS Security Mode", 0, one, opt, TypeInteger, "0..255", "", "Security mode of the SMS binding."),
				res(7, "SMS Binding Key Parameters", 0, one, opt, TypeOpaque, "6", "", "Key parameters of the SMS binding."),
				res(8, "SMS Binding Secret Key(s)", 0, one, opt, TypeOpaque, "16..32", "", "Secret keys of the SMS binding."),
				res(9, "LwM2M Server SMS Number", 0, one, opt, TypeString, "", "", "MSISDN of the server for the SMS binding."),
				res(10, "Short Server ID", 0, one, opt, TypeInteger, "1..65534", "", "Links this instance to the server object instance with the same id."),
				res(11, "Client Hold Off Time", 0, one, opt, TypeInteger, "", "s", "Seconds to wait before client-initiated bootstrap."),
				res(12, "Bootstrap-Server Account Timeout", 0, one, opt, TypeInteger, "", "s", "Seconds after which the bootstrap account is deleted."),
				res(13, "Matching Type", 0, one, opt, TypeUnsigned, "0..3", "", "How the server certificate is matched: 0 exact, 1 SHA-256, 2 SHA-384, 3 SHA-512."),
				res(14, "SNI", 0, one, opt, TypeString, "", "", "Server Name Indication for the (D)TLS handshake."),
				res(15, "Certificate Usage", 0, one, opt, TypeUnsigned, "0..3", "", "Certificate usage as in RFC 6698."),
				res(16, "DTLS/TLS Ciphersuite", 0, mul, opt, TypeUnsigned, "", "", "IANA (D)TLS cipher suites the client may use."),
				res(17, "OSCORE Security Mode", 0, one, opt, TypeObjlnk, "", "", "Link to an OSCORE object instance."),
			},
		},
		{
			ID: 1, Name: "LwM2M Server", URN: "urn:oma:lwm2m:oma:1:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: true, Mandatory: true,
			Description: "Data about an LwM2M server the client registers with.",
			Resources: []ResourceDef{
				res(0, "Short Server ID", r, one, man, TypeInteger, "1..65534", "", "Identifies the server."),
				res(1, "Lifetime", rw, one, man, TypeInteger, "", "s", "Registration lifetime."),
				res(2, "Default Minimum Period", rw, one, opt, TypeInteger, "", "s", "Default pmin of observations."),
				res(3, "Default Maximum Period", rw, one, opt, TypeInteger, "", "s", "Default pmax of observations."),
				res(4, "Disable", e, one, opt, TypeNone, "", "", "Disables the server for Disable Timeout."),
				res(5, "Disable Timeout", rw, one, opt, TypeInteger, "", "s", "How long the server stays disabled; default 86400."),
				res(6, "Notification Storing When Disabled or Offline", rw, one, man, TypeBoolean, "", "", "Whether notifications are stored while the server is unreachable."),
				res(7, "Binding", rw, one, man, TypeString, "", "", "Transport binding and modes, e.g. U, UQ, S."),
				res(8, "Registration Update Trigger", e, one, man, TypeNone, "", "", "Makes the client send a registration update."),
				res(9, "Bootstrap-Request Trigger", e, one, opt, TypeNone, "", "", "Makes the client start a bootstrap."),
				res(10, "APN Link", rw, one, opt, TypeObjlnk, "", "", "Link to an APN connection profile."),
				res(11, "TLS-DTLS Alert Code", r, one, opt, TypeUnsigned, "0..255", "", "Last (D)TLS alert received."),
				res(12, "Last Bootstrapped", r, one, opt, TypeTime, "", "", "When the client last bootstrapped."),
				res(13, "Registration Priority Order", rw, one, opt, TypeUnsigned, "", "", "Order in which the client registers with servers."),
				res(14, "Initial Registration Delay Timer", rw, one, opt, TypeUnsigned, "", "s", "Delay before registering."),
				res(15, "Registration Failure Block", rw, one, opt, TypeBoolean, "", "", "Whether a failed registration blocks the next servers."),
				res(16, "Bootstrap on Registration Failure", rw, one, opt, TypeBoolean, "", "", "Whether a failed registration starts a bootstrap."),
				res(17, "Communication Retry Count", rw, one, opt, TypeUnsigned, "", "", "Registration retries in a sequence."),
				res(18, "Communication Retry Timer", rw, one, opt, TypeUnsigned, "", "s", "Base delay between retries."),
				res(19, "Communication Sequence Delay Timer", rw, one, opt, TypeUnsigned, "", "s", "Delay between retry sequences."),
				res(20, "Communication Sequence Retry Count", rw, one, opt, TypeUnsigned, "", "", "Number of retry sequences."),
				res(21, "Trigger", rw, one, opt, TypeBoolean, "", "", "Whether the server may wake the client by SMS."),
				res(22, "Preferred Transport", rw, one, opt, TypeString, "", "", "Transport the client should use with this server."),
				res(23, "Mute Send", rw, one, opt, TypeBoolean, "", "", "Whether the Send operation is disabled."),
			},
		},
		{
			ID: 3, Name: "Device", URN: "urn:oma:lwm2m:oma:3:1.1", Version: "1.1", LwM2MVersion: "1.1",
			Multiple: false, Mandatory: true,
			Description: "Information about the device: maker, model, power, memory, time.",
			Resources: []ResourceDef{
				res(0, "Manufacturer", r, one, opt, TypeString, "", "", "Manufacturer name."),
				res(1, "Model Number", r, one, opt, TypeString, "", "", "Model identifier."),
				res(2, "Serial Number", r, one, opt, TypeString, "", "", "Serial number."),
				res(3, "Firmware Version", r, one, opt, TypeString, "", "", "Current firmware version."),
				res(4, "Reboot", e, one, man, TypeNone, "", "", "Reboots the device."),
				res(5, "Factory Reset", e, one, opt, TypeNone, "", "", "Restores the factory configuration."),
				res(6, "Available Power Sources", r, mul, opt, TypeInteger, "0..7", "", "0 DC, 1 internal battery, 2 external battery, 3 fuel cell, 4 PoE, 5 USB, 6 AC mains, 7 solar."),
				res(7, "Power Source Voltage", r, mul, opt, TypeInteger, "", "mV", "Voltage of each power source."),
				res(8, "Power Source Current", r, mul, opt, TypeInteger, "", "mA", "Current of each power source."),
				res(9, "Battery Level", r, one, opt, TypeInteger, "0..100", "/100", "Battery charge in percent."),
				res(10, "Memory Free", r, one, opt, TypeInteger, "", "KiB", "Free storage."),
				res(11, "Error Code", r, mul, man, TypeInteger, "0..32", "", "0 no error, 1 low battery, 2 external supply off, 3 GPS failure, 4 low signal, 5 out of memory, 6 SMS failure, 7 IP connectivity failure, 8 peripheral failure."),
				res(12, "Reset Error Code", e, one, opt, TypeNone, "", "", "Clears the error codes."),
				res(13, "Current Time", rw, one, opt, TypeTime, "", "", "The device's clock."),
				res(14, "UTC Offset", rw, one, opt, TypeString, "", "", "Offset from UTC, ISO 8601 (+02:00)."),
				res(15, "Timezone", rw, one, opt, TypeString, "", "", "IANA time zone."),
				res(16, "Supported Binding and Modes", r, one, man, TypeString, "", "", "Bindings the client supports, e.g. UQ."),
				res(17, "Device Type", r, one, opt, TypeString, "", "", "Kind of device, e.g. meter."),
				res(18, "Hardware Version", r, one, opt, TypeString, "", "", "Hardware version."),
				res(19, "Software Version", r, one, opt, TypeString, "", "", "Software version."),
				res(20, "Battery Status", r, one, opt, TypeInteger, "0..6", "", "0 normal, 1 charging, 2 charge complete, 3 damaged, 4 low, 5 not installed, 6 unknown."),
				res(21, "Memory Total", r, one, opt, TypeInteger, "", "KiB", "Total storage."),
				res(22, "ExtDevInfo", r, mul, opt, TypeObjlnk, "", "", "Links to objects with more device information."),
			},
		},
		{
			ID: 4, Name: "Connectivity Monitoring", URN: "urn:oma:lwm2m:oma:4", Version: "1.0", LwM2MVersion: "1.0",
			Multiple: false, Mandatory: false,
			Description: "The state of the network connection.",
			Resources: []ResourceDef{
				res(0, "Network Bearer", r, one, man, TypeInteger, "0..50", "", "Bearer in use: 0 GSM, 1 TD-SCDMA, 2 WCDMA, 3 CDMA2000, 4 WiMAX, 5 LTE-TDD, 6 LTE-FDD, 7 NB-IoT, 21 WLAN, 41 Ethernet."),
				res(1, "Available Network Bearer", r, mul, man, TypeInteger, "0..50", "", "Bearers the device can use."),
				res(2, "Radio Signal Strength", r, one, man, TypeInteger, "", "dBm", "Average received signal strength."),
				res(3, "Link Quality", r, one, opt, TypeInteger, "", "", "Bearer-specific link quality."),
				res(4, "IP Addresses", r, mul, man, TypeString, "", "", "IP addresses of the device."),
				res(5, "Router IP Addresses", r, mul, opt, TypeString, "", "", "IP addresses of the next-hop routers."),
				res(6, "Link Utilization", r, one, opt, TypeInteger, "0..100", "%", "Average link utilization."),
				res(7, "APN", r, mul, opt, TypeString, "", "", "Access point names in use."),
				res(8, "Cell ID", r, one, opt, TypeInteger, "", "", "Serving cell id."),
				res(9, "SMNC", r, one, opt, TypeInteger, "", "", "Serving mobile network code."),
				res(10, "SMCC", r, one, opt, TypeInteger, "", "", "Serving mobile country code."),
			},
		},
		{
			ID: 5, Name: "Firmware Update", URN: "urn:oma:lwm2m:oma:5", Version: "1.0", LwM2MVersion: "1.1",
			Multiple: false, Mandatory: false,
			Description: "Firmware update by push (write Package) or pull (write Package URI), then Update.",
			Resources: []ResourceDef{
				res(FirmwarePackage, "Package", w, one, man, TypeOpaque, "", "", "The firmware image."),
				res(FirmwarePackageURI, "Package URI", rw, one, man, TypeString, "0..255", "", "URI the client downloads the image from; empty cancels."),
				res(FirmwareUpdate, "Update", e, one, man, TypeNone, "", "", "Installs the downloaded image."),
				res(FirmwareState, "State", r, one, man, TypeInteger, "0..3", "", "0 Idle, 1 Downloading, 2 Downloaded, 3 Updating."),
				res(FirmwareUpdateResult, "Update Result", r, one, man, TypeInteger, "0..9", "", "0 initial, 1 success, 2 not enough flash, 3 out of RAM, 4 connection lost, 5 integrity check failure, 6 unsupported package type, 7 invalid URI, 8 update failed, 9 unsupported protocol."),
				res(FirmwarePkgName, "PkgName", r, one, opt, TypeString, "0..255", "", "Name of the package."),
				res(FirmwarePkgVersion, "PkgVersion", r, one, opt, TypeString, "0..255", "", "Version of the package."),
				res(FirmwareProtocols, "Firmware Update Protocol Support", r, mul, opt, TypeInteger, "0..5", "", "0 CoAP, 1 CoAPS, 2 HTTP 1.1, 3 HTTPS 1.1, 4 CoAP over TCP, 5 CoAP over TLS."),
				res(FirmwareDeliveryMethod, "Firmware Update Delivery Method", r, one, man, TypeInteger, "0..2", "", "0 pull only, 1 push only, 2 both."),
			},
		},
		{
			ID: 19, Name: "BinaryAppDataContainer", URN: "urn:oma:lwm2m:oma:19", Version: "1.0", LwM2MVersion: "1.0",
			Multiple: true, Mandatory: false,
			Description: "Application data in a binary format; Doze uses /19/0/0 for uplink and /19/1/0 for downlink.",
			Resources: []ResourceDef{
				res(0, "Data", rw, mul, man, TypeOpaque, "", "", "Application data."),
				res(1, "Data Priority", rw, one, opt, TypeInteger, "1 byte", "", "Priority of the data; 0 is the highest."),
				res(2, "Data Creation Time", rw, one, opt, TypeTime, "", "", "When the data were produced."),
				res(3, "Data Description", rw, one, opt, TypeString, "32 bytes", "", "What the data are."),
				res(4, "Data Format", rw, one, opt, TypeString, "32 bytes", "", "Format of the data, e.g. a MIME type."),
				res(5, "App ID", rw, one, opt, TypeInteger, "2 bytes", "", "Application the data belong to."),
			},
		},
	}
}
