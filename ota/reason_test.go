package ota

import "testing"

// TestPermanentReasons: automatic retries (OTA-4, OTA-8: retries by
// failure class) skip the failures that a retry cannot change, and retry
// every other reason of OTA-3.
func TestPermanentReasons(t *testing.T) {
	for reason, want := range map[string]bool{
		ReasonSameVersion:        true,
		ReasonSourceVersion:      true,
		ReasonNoProtocolService:  true,
		ReasonUnsupported:        true,
		ReasonInvalidURI:         true,
		ReasonStopped:            true,
		ReasonNotOnline:          false,
		ReasonTaskConflict:       false,
		ReasonOnlineTimeout:      false,
		ReasonCellIDTimeout:      false,
		ReasonVersionTimeout:     false,
		ReasonResultTimeout:      false,
		ReasonUpdateCheckTimeout: false,
		ReasonDownloadTimeout:    false,
		ReasonIntegrity:          false,
		ReasonNoStorage:          false,
		ReasonOutOfMemory:        false,
		ReasonConnectionLost:     false,
		ReasonUpdateFailed:       false,
	} {
		if got := permanent(reason); got != want {
			t.Errorf("permanent(%q) = %v, want %v", reason, got, want)
		}
	}
}
