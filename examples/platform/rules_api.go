package main

import (
	"errors"
	"net/http"

	"github.com/doze-io/doze/forward"
	"github.com/doze-io/doze/internal/apitime"
	"github.com/doze-io/doze/push"
)

// ruleRoutes are the rules API (ours; issue 23 item 5): each app sees and
// changes only its own rules; another app's are 404.
func ruleRoutes() []route {
	return []route{
		{"POST", "/doze/v1/rules", false, (*Platform).createRule},
		{"GET", "/doze/v1/rules", false, (*Platform).listRules},
		{"GET", "/doze/v1/rules/{ruleId}", false, (*Platform).getRule},
		{"PUT", "/doze/v1/rules/{ruleId}", false, (*Platform).changeRule},
		{"DELETE", "/doze/v1/rules/{ruleId}", false, (*Platform).deleteRule},
	}
}

// ruleBody is a rule as the API takes it.
type ruleBody struct {
	Name      string           `json:"name"`
	Condition string           `json:"condition"`
	Enabled   *bool            `json:"enabled"` // absent means true
	Targets   []forward.Target `json:"targets"`
}

// ruleTarget is a target as the API shows it: the password of its URL
// hidden, and for a broker target its delivery state.
type ruleTarget struct {
	forward.Target
	State *push.EndpointState `json:"state,omitempty"`
}

type ruleJSON struct {
	RuleID           string       `json:"ruleId"`
	Name             string       `json:"name"`
	Condition        string       `json:"condition"`
	Enabled          bool         `json:"enabled"`
	Targets          []ruleTarget `json:"targets"`
	CreateTime       string       `json:"createTime"`
	LastModifiedTime string       `json:"lastModifiedTime"`
}

func (p *Platform) ruleJSON(r forward.Rule) ruleJSON {
	out := ruleJSON{RuleID: r.ID, Name: r.Name, Condition: r.Condition, Enabled: r.Enabled, Targets: []ruleTarget{},
		CreateTime: apitime.Format(r.Created), LastModifiedTime: apitime.Format(r.Updated)}
	for i, t := range r.Targets {
		rt := ruleTarget{Target: t.Redacted()}
		if t.Type != forward.Webhook {
			s, ok := p.fwd.TargetState(r.ID, i)
			if !ok {
				s = push.EndpointState{State: push.StateValid}
			}
			s.CallbackURL = ""
			rt.State = &s
		}
		out.Targets = append(out.Targets, rt)
	}
	return out
}

func (b ruleBody) rule(app, id string) forward.Rule {
	enabled := b.Enabled == nil || *b.Enabled
	return forward.Rule{ID: id, AppID: app, Name: b.Name, Condition: b.Condition, Enabled: enabled, Targets: b.Targets}
}

// ruleErr answers a rules engine error with its status and code.
func ruleErr(err error) error {
	var fe *forward.FieldError
	switch {
	case errors.Is(err, forward.ErrNotFound):
		return notFound("rule_not_found", "no rule with this ruleId")
	case errors.Is(err, push.ErrAddressDenied) && errors.As(err, &fe):
		return badRequest("target_address_denied", "%s", err)
	case errors.Is(err, forward.ErrCondition):
		return badRequest("invalid_condition", "%s", err)
	case errors.As(err, &fe):
		return badRequest("invalid_rule", "%s", err)
	case errors.Is(err, forward.ErrTooManyRules):
		return conflict("too_many_rules", "%s", err)
	}
	return err
}

func (p *Platform) createRule(w http.ResponseWriter, r *http.Request) error {
	var b ruleBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	rule, err := p.fwd.CreateRule(r.Context(), b.rule(appOf(r), ""))
	if err != nil {
		return ruleErr(err)
	}
	writeJSON(w, http.StatusCreated, p.ruleJSON(rule))
	return nil
}

func (p *Platform) listRules(w http.ResponseWriter, r *http.Request) error {
	rules, err := p.fwd.Rules(r.Context(), appOf(r))
	if err != nil {
		return err
	}
	out := struct {
		TotalCount int        `json:"totalCount"`
		Rules      []ruleJSON `json:"rules"`
	}{len(rules), []ruleJSON{}}
	for _, rule := range rules {
		out.Rules = append(out.Rules, p.ruleJSON(rule))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (p *Platform) getRule(w http.ResponseWriter, r *http.Request) error {
	rule, err := p.fwd.Rule(r.Context(), appOf(r), r.PathValue("ruleId"))
	if err != nil {
		return ruleErr(err)
	}
	writeJSON(w, http.StatusOK, p.ruleJSON(rule))
	return nil
}

func (p *Platform) changeRule(w http.ResponseWriter, r *http.Request) error {
	var b ruleBody
	if err := decodeBody(r, &b); err != nil {
		return err
	}
	rule, err := p.fwd.UpdateRule(r.Context(), b.rule(appOf(r), r.PathValue("ruleId")))
	if err != nil {
		return ruleErr(err)
	}
	writeJSON(w, http.StatusOK, p.ruleJSON(rule))
	return nil
}

func (p *Platform) deleteRule(w http.ResponseWriter, r *http.Request) error {
	if err := p.fwd.DeleteRule(r.Context(), appOf(r), r.PathValue("ruleId")); err != nil {
		return ruleErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
