package ota

import "github.com/doze-io/doze/ota/pcp"

// Failure reasons of sub-tasks (OTA-2, OTA-3; FAQ §10.3, §10.5). The
// strings are exact: applications match them.
const (
	ReasonSameVersion        = "The current version is the same as the target version"
	ReasonNotOnline          = "Device Abnormal is not online"
	ReasonTaskConflict       = "Task Conflict"
	ReasonNoProtocolService  = "The task failed to start, unable to find protocol service based on device information"
	ReasonOnlineTimeout      = "Waiting for the device online timeout"
	ReasonCellIDTimeout      = "Waiting for report cellId timeout"
	ReasonVersionTimeout     = "Waiting for report device firmware version timeout"
	ReasonResultTimeout      = "Wait for the device to report upgrade result timeout"
	ReasonUpdateCheckTimeout = "Updating timeout and query device version for check timeout"
	ReasonDownloadTimeout    = "Waiting for device downloaded package timeout"
	ReasonIntegrity          = "Integrity check failure for new downloaded package"
	ReasonUnsupported        = "Unsupported package type"
	ReasonNoStorage          = "Not enough storage for the new firmware package"
	ReasonOutOfMemory        = "Out of memory during downloading process"
	ReasonConnectionLost     = "Connection lost during downloading process"
	ReasonInvalidURI         = "Invalid URI"
	ReasonUpdateFailed       = "Firmware update failed"

	// ReasonSourceVersion is Doze's wording for a device whose version is
	// not in the package's source versions (OTA-1; the FAQ gives no
	// string for it).
	ReasonSourceVersion = "The current version is not in the source versions of the package"
	// ReasonStopped marks sub-tasks ended by stopping their task.
	ReasonStopped = "The task was stopped"
)

// UpdateResultReason maps an LwM2M object 5 Update Result (/5/0/5) to a
// failure reason: 2 storage, 3 memory, 4 connection lost, 5 integrity, 6
// unsupported type, 7 invalid URI, 8 update failed (OTA-3). 0
// (initial) and 1 (success) are not failures and give "", false; values
// past 8 give ReasonUpdateFailed.
func UpdateResultReason(result int) (string, bool) {
	switch result {
	case 0, 1:
		return "", false
	case 2:
		return ReasonNoStorage, true
	case 3:
		return ReasonOutOfMemory, true
	case 4:
		return ReasonConnectionLost, true
	case 5:
		return ReasonIntegrity, true
	case 6:
		return ReasonUnsupported, true
	case 7:
		return ReasonInvalidURI, true
	default:
		return ReasonUpdateFailed, true
	}
}

// ResultReason maps a PCP result code other than ResultOK to a failure
// reason (OTA-3). Busy, low battery and internal error have no reason
// of their own in the FAQ; they map to ReasonUpdateFailed. Weak signal
// maps to ReasonConnectionLost.
func ResultReason(r pcp.Result) string {
	switch r {
	case pcp.ResultAlreadyLatest:
		return ReasonSameVersion
	case pcp.ResultWeakSignal:
		return ReasonConnectionLost
	case pcp.ResultNoStorage:
		return ReasonNoStorage
	case pcp.ResultDownloadTimeout:
		return ReasonDownloadTimeout
	case pcp.ResultVerificationFailed:
		return ReasonIntegrity
	case pcp.ResultUnsupportedPackage:
		return ReasonUnsupported
	case pcp.ResultOutOfMemory:
		return ReasonOutOfMemory
	default:
		return ReasonUpdateFailed
	}
}

// permanent reports whether a failure will recur on an automatic retry
// (OTA-8: retries by failure class). Manual Retry retries them anyway.
func permanent(reason string) bool {
	switch reason {
	case ReasonSameVersion, ReasonSourceVersion, ReasonNoProtocolService, ReasonUnsupported, ReasonInvalidURI, ReasonStopped:
		return true
	}
	return false
}
