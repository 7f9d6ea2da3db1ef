package iris

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// Versions returns IRIS's version string (e.g. "v2.4.20"). It also checks
// that the API key is accepted.
func (c *Client) Versions(ctx context.Context) (string, error) {
	var v struct {
		IRISCurrent string `json:"iris_current"`
	}
	if err := c.do(ctx, "GET", "/api/versions", -1, nil, &v); err != nil {
		return "", err
	}
	return v.IRISCurrent, nil
}

// WhoAmI returns the id of the API key's user.
func (c *Client) WhoAmI(ctx context.Context) (int64, error) {
	var v struct {
		UserID flexInt `json:"user_id"`
		ID     flexInt `json:"id"`
	}
	if err := c.do(ctx, "GET", "/user/whoami", -1, nil, &v); err != nil {
		return 0, err
	}
	if v.UserID != 0 {
		return int64(v.UserID), nil
	}
	return int64(v.ID), nil
}

// RefItem is a row of a reference list (IOC types, asset types, ...).
type RefItem struct {
	ID   int64
	Name string
}

// IOCTypes returns IRIS's IOC types.
func (c *Client) IOCTypes(ctx context.Context) ([]RefItem, error) {
	var rows []struct {
		ID   flexInt `json:"type_id"`
		Name string  `json:"type_name"`
	}
	if err := c.do(ctx, "GET", "/manage/ioc-types/list", -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]RefItem, len(rows))
	for i, r := range rows {
		out[i] = RefItem{ID: int64(r.ID), Name: r.Name}
	}
	return out, nil
}

// ListCases returns every case the user can see. Open means IRIS reports no
// close date. The list carries no tags; see Case.
func (c *Client) ListCases(ctx context.Context) ([]ioc.Case, error) {
	var rows []struct {
		ID        flexInt `json:"case_id"`
		Name      string  `json:"case_name"`
		Client    string  `json:"client_name"`
		CloseDate *string `json:"case_close_date"`
		StateName *string `json:"state_name"`
	}
	if err := c.do(ctx, "GET", "/manage/cases/list", -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]ioc.Case, len(rows))
	for i, r := range rows {
		closed := (r.CloseDate != nil && *r.CloseDate != "") || (r.StateName != nil && *r.StateName == "Closed")
		out[i] = ioc.Case{ID: int64(r.ID), Name: r.Name, Customer: r.Client, Open: !closed}
		if r.StateName != nil {
			out[i].State = *r.StateName
		}
	}
	return out, nil
}

// Case returns one case with its tags.
func (c *Client) Case(ctx context.Context, id int64) (ioc.Case, error) {
	var r struct {
		ID        flexInt `json:"case_id"`
		Name      string  `json:"case_name"`
		Customer  string  `json:"customer_name"`
		CloseDate *string `json:"close_date"`
		Tags      string  `json:"case_tags"`
		State     *string `json:"state_name"`
		Custom    map[string]map[string]struct {
			Value any `json:"value"`
		} `json:"custom_attributes"`
	}
	if err := c.do(ctx, "GET", "/manage/cases/"+strconv.FormatInt(id, 10), -1, nil, &r); err != nil {
		return ioc.Case{}, err
	}
	cs := ioc.Case{ID: int64(r.ID), Name: r.Name, Customer: r.Customer, Tags: splitTags(r.Tags),
		Open: r.CloseDate == nil || *r.CloseDate == ""}
	if r.State != nil {
		cs.State = *r.State
	}
	for tab, fields := range r.Custom {
		for name, f := range fields {
			if v, ok := f.Value.(string); ok && v != "" {
				if cs.Custom == nil {
					cs.Custom = map[string]map[string]string{}
				}
				if cs.Custom[tab] == nil {
					cs.Custom[tab] = map[string]string{}
				}
				cs.Custom[tab][name] = v
			}
		}
	}
	return cs, nil
}

// IOCState returns a case's IOC change counter, cheap to poll.
func (c *Client) IOCState(ctx context.Context, cid int64) (int64, error) {
	var v struct {
		State flexInt `json:"object_state"`
	}
	if err := c.do(ctx, "GET", "/case/ioc/state", cid, nil, &v); err != nil {
		return 0, err
	}
	return int64(v.State), nil
}

// iocRow decodes IOCs from the list (ioc_type is a name) and from single
// GETs and webhooks (ioc_type is an object).
type iocRow struct {
	ID     flexInt         `json:"ioc_id"`
	Value  string          `json:"ioc_value"`
	TypeID flexInt         `json:"ioc_type_id"`
	Type   json.RawMessage `json:"ioc_type"`
	TLPID  flexInt         `json:"ioc_tlp_id"`
	UserID flexInt         `json:"user_id"`
	Link   []struct {
		CaseID flexInt `json:"case_id"`
	} `json:"link"`
}

func (r iocRow) toIOC() ioc.IOC {
	i := ioc.IOC{ID: int64(r.ID), Value: r.Value, TypeID: int64(r.TypeID), TLPID: int64(r.TLPID), UserID: int64(r.UserID)}
	for _, l := range r.Link {
		i.LinkedCases = append(i.LinkedCases, int64(l.CaseID))
	}
	var name string
	var obj struct {
		Name string `json:"type_name"`
	}
	if json.Unmarshal(r.Type, &name) == nil {
		i.TypeName = name
	} else if json.Unmarshal(r.Type, &obj) == nil {
		i.TypeName = obj.Name
	}
	return i
}

// ListIOCs returns the IOCs of a case. TypeName is filled from the list.
func (c *Client) ListIOCs(ctx context.Context, cid int64) ([]ioc.IOC, error) {
	var v struct {
		IOC []iocRow `json:"ioc"`
	}
	if err := c.do(ctx, "GET", "/case/ioc/list", cid, nil, &v); err != nil {
		return nil, err
	}
	out := make([]ioc.IOC, len(v.IOC))
	for i, r := range v.IOC {
		out[i] = r.toIOC()
	}
	return out, nil
}

// IOC returns one IOC of a case. IRIS answers 400 when the IOC is not linked
// to the case.
func (c *Client) IOC(ctx context.Context, cid, id int64) (ioc.IOC, error) {
	var r iocRow
	if err := c.do(ctx, "GET", "/case/ioc/"+strconv.FormatInt(id, 10), cid, nil, &r); err != nil {
		return ioc.IOC{}, err
	}
	return r.toIOC(), nil
}

// ParseWebhookIOCs decodes the IOC list of a webhooks-module payload
// ({"iocs": [IocSchema...]}).
func ParseWebhookIOCs(b []byte) ([]ioc.IOC, error) {
	var v struct {
		IOCs []iocRow `json:"iocs"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("webhook payload: %w", err)
	}
	out := make([]ioc.IOC, len(v.IOCs))
	for i, r := range v.IOCs {
		out[i] = r.toIOC()
	}
	return out, nil
}

// NewIOC is an IOC to add to a case.
type NewIOC struct {
	Value       string
	TypeID      int64
	TLPID       int64
	Description string
	Tags        string
}

// AddIOC adds an IOC to a case. IRIS 2.4 answers 200 with the existing IOC
// when the value and type already exist. custom_attributes is always sent:
// without it IRIS stores null and later attribute updates fail with 500.
func (c *Client) AddIOC(ctx context.Context, cid int64, n NewIOC) (ioc.IOC, error) {
	body := map[string]any{"ioc_value": n.Value, "ioc_type_id": n.TypeID, "ioc_tlp_id": n.TLPID,
		"ioc_description": n.Description, "ioc_tags": n.Tags, "custom_attributes": map[string]any{}}
	var r iocRow
	if err := c.do(ctx, "POST", "/case/ioc/add", cid, body, &r); err != nil {
		return ioc.IOC{}, err
	}
	return r.toIOC(), nil
}

// AddCase creates a case (tests and demo) and returns its id. IRIS 2.4.20
// ignores case_tags on create (contract, "Observed on a real IRIS", item
// 15), so tags are set by an update, as IRIS stores them.
func (c *Client) AddCase(ctx context.Context, name, description string, customerID int64, tags string) (int64, error) {
	body := map[string]any{"case_name": name, "case_description": description, "case_customer": customerID,
		"case_soc_id": "", "custom_attributes": map[string]any{}}
	var r struct {
		ID flexInt `json:"case_id"`
	}
	if err := c.do(ctx, "POST", "/manage/cases/add", -1, body, &r); err != nil {
		return 0, err
	}
	if tags != "" {
		if err := c.SetCaseTags(ctx, int64(r.ID), tags); err != nil {
			return int64(r.ID), err
		}
	}
	return int64(r.ID), nil
}

// SetCaseTags replaces a case's tags (comma separated).
func (c *Client) SetCaseTags(ctx context.Context, id int64, tags string) error {
	return c.do(ctx, "POST", "/manage/cases/update/"+strconv.FormatInt(id, 10), -1, map[string]any{"case_tags": tags}, nil)
}

// CloseCase closes a case.
func (c *Client) CloseCase(ctx context.Context, id int64) error {
	return c.do(ctx, "POST", "/manage/cases/close/"+strconv.FormatInt(id, 10), -1, nil, nil)
}

func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// flexInt accepts IRIS integers sent as numbers or numeric strings.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %.20s", s)
	}
	*f = flexInt(n)
	return nil
}

// HookTask is a module task IRIS ran for a hook (Celery, result_extended):
// the case it was called from, and when it finished.
type HookTask struct {
	ID     string
	CaseID int64 // 0 when IRIS does not say
	Module string
	Hook   string
	Done   time.Time // IRIS's local time, without zone: compare with each other only
	User   string
}

// HookTasks returns the newest module tasks, newest first, as IRIS's "DIM
// tasks" page lists them (GET /dim/tasks/list/<n>, any user). IRIS does not
// pass the case of a manual trigger to the webhooks module; this list is
// where it can be read.
func (c *Client) HookTasks(ctx context.Context, n int) ([]HookTask, error) {
	var rows []struct {
		Case   string `json:"case"`
		Module string `json:"module"`
		TaskID string `json:"task_id"`
		Done   string `json:"date_done"`
		User   string `json:"user"`
	}
	if err := c.do(ctx, "GET", "/dim/tasks/list/"+strconv.Itoa(n), -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]HookTask, 0, len(rows))
	for _, r := range rows {
		t := HookTask{ID: r.TaskID, User: r.User}
		t.Module, t.Hook, _ = strings.Cut(r.Module, "::")
		if id, err := strconv.ParseInt(strings.TrimPrefix(r.Case, "Case #"), 10, 64); err == nil {
			t.CaseID = id
		}
		for _, layout := range []string{"2006-01-02T15:04:05.999999", time.RFC1123, time.RFC3339Nano} {
			if d, err := time.Parse(layout, r.Done); err == nil {
				t.Done = d
				break
			}
		}
		out = append(out, t)
	}
	return out, nil
}
