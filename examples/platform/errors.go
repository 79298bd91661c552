package main

import (
	"errors"
	"net/http"
	"strings"

	"github.com/doze-io/doze/command"
	"github.com/doze-io/doze/ota"
	"github.com/doze-io/doze/push"
	"github.com/doze-io/doze/registry"
)

// errRule maps a package's sentinel error to an HTTP status and a stable
// error_code of the API (docs/api.md "Errors").
type errRule struct {
	err    error
	status int
	code   string // "" means invalid_<field> from the error's FieldError
}

// errRules are tried in order; the first sentinel the error wraps decides.
var errRules = []errRule{
	// registry
	{registry.ErrNodeIDTaken, http.StatusConflict, "conflict"},
	{registry.ErrExists, http.StatusConflict, "conflict"},
	{registry.ErrGroupExists, http.StatusConflict, "conflict"},
	{registry.ErrNotFound, http.StatusNotFound, "device_not_found"},
	{registry.ErrGroupNotFound, http.StatusNotFound, "group_not_found"},
	{registry.ErrGatewayNotFound, http.StatusBadRequest, "gateway_not_found"},
	{registry.ErrUnknownProduct, http.StatusBadRequest, "unknown_product"},
	{registry.ErrInvalid, http.StatusBadRequest, ""},
	// command
	{command.ErrCallbackConflict, http.StatusForbidden, "callback_address_conflict"},
	{command.ErrNotFound, http.StatusNotFound, "command_not_found"},
	{command.ErrNotPending, http.StatusConflict, "command_not_pending"},
	{command.ErrQueueFull, http.StatusConflict, "queue_full"},
	{command.ErrUnreachable, http.StatusConflict, "device_unreachable"},
	{command.ErrInvalid, http.StatusBadRequest, ""},
	{command.ErrBadJSON, http.StatusBadRequest, ""},
	{command.ErrBadMode, http.StatusBadRequest, ""},
	// push: each broken URL rule has its own code (PSH-2)
	{push.ErrURLNoPort, http.StatusBadRequest, "callback_url_no_port"},
	{push.ErrURLNoPath, http.StatusBadRequest, "callback_url_no_path"},
	{push.ErrURLScheme, http.StatusBadRequest, "callback_url_bad_scheme"},
	{push.ErrURLNoHost, http.StatusBadRequest, "callback_url_no_host"},
	{push.ErrURLUserInfo, http.StatusBadRequest, "callback_url_user_info"},
	{push.ErrURLSyntax, http.StatusBadRequest, "callback_url_syntax"},
	{push.ErrAddressDenied, http.StatusBadRequest, "callback_address_denied"},
	{push.ErrResolve, http.StatusBadRequest, "callback_host_unresolved"},
	{push.ErrNotifyType, http.StatusBadRequest, "invalid_notifyType"},
	{push.ErrSecret, http.StatusBadRequest, "invalid_secret"},
	{push.ErrOriginConflict, http.StatusForbidden, "callback_address_conflict"},
	{push.ErrNotFound, http.StatusNotFound, "subscription_not_found"},
	// ota
	{ota.ErrNotFound, http.StatusNotFound, "not_found"},
	{ota.ErrInvalid, http.StatusBadRequest, "invalid_argument"},
	{ota.ErrPackageInUse, http.StatusConflict, "package_in_use"},
	{ota.ErrTaskFinished, http.StatusConflict, "task_finished"},
	{ota.ErrNothingToRetry, http.StatusConflict, "nothing_to_retry"},
}

// apiErr gives err the status and code of the first rule it matches; an
// error that matches none is answered 500.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	for _, r := range errRules {
		if !errors.Is(err, r.err) {
			continue
		}
		code := r.code
		if code == "" {
			code = fieldCode(err)
		}
		return withStatus(err, r.status, code)
	}
	return err
}

// fieldCode is invalid_<field> for an error that names its field.
func fieldCode(err error) string {
	var rf *registry.FieldError
	var cf *command.FieldError
	switch {
	case errors.As(err, &rf):
		return "invalid_" + strings.ReplaceAll(rf.Field, ".", "_")
	case errors.As(err, &cf):
		return "invalid_" + strings.ReplaceAll(cf.Field, ".", "_")
	}
	return "bad_request"
}
