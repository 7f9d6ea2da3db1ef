package iris

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/velohunt/velohunt/internal/ioc"
)

// AssetTypes returns IRIS's asset types.
func (c *Client) AssetTypes(ctx context.Context) ([]RefItem, error) {
	var rows []struct {
		ID   flexInt `json:"asset_id"`
		Name string  `json:"asset_name"`
	}
	if err := c.do(ctx, "GET", "/manage/asset-type/list", -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]RefItem, len(rows))
	for i, r := range rows {
		out[i] = RefItem{ID: int64(r.ID), Name: r.Name}
	}
	return out, nil
}

// AnalysisStatuses returns IRIS's analysis statuses.
func (c *Client) AnalysisStatuses(ctx context.Context) ([]RefItem, error) {
	return c.idNameList(ctx, "/manage/analysis-status/list", "id", "name")
}

// EventCategories returns IRIS's timeline event categories.
func (c *Client) EventCategories(ctx context.Context) ([]RefItem, error) {
	return c.idNameList(ctx, "/manage/event-categories/list", "id", "name")
}

// TLPs returns IRIS's TLP levels.
func (c *Client) TLPs(ctx context.Context) ([]RefItem, error) {
	return c.idNameList(ctx, "/manage/tlp/list", "tlp_id", "tlp_name")
}

// CompromiseStatuses returns IRIS's compromise statuses (value, name).
func (c *Client) CompromiseStatuses(ctx context.Context) ([]RefItem, error) {
	return c.idNameList(ctx, "/manage/compromise-status/list", "value", "name")
}

func (c *Client) idNameList(ctx context.Context, path, idKey, nameKey string) ([]RefItem, error) {
	var rows []map[string]json.RawMessage
	if err := c.do(ctx, "GET", path, -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]RefItem, 0, len(rows))
	for _, r := range rows {
		var id flexInt
		var name string
		if json.Unmarshal(r[idKey], &id) != nil || json.Unmarshal(r[nameKey], &name) != nil {
			continue
		}
		out = append(out, RefItem{ID: int64(id), Name: name})
	}
	return out, nil
}

// Asset is an IRIS asset as listed.
type Asset struct {
	ID       int64
	Name     string
	TypeID   int64
	Tags     string
	IOCLinks []int64
}

// ListAssets returns the assets of a case. Assets without an analysis
// status are missing from this list (IRIS inner-joins it), which is why
// velohunt always sets one.
func (c *Client) ListAssets(ctx context.Context, cid int64) ([]Asset, error) {
	var v struct {
		Assets []struct {
			ID       flexInt `json:"asset_id"`
			Name     string  `json:"asset_name"`
			TypeID   flexInt `json:"asset_type_id"`
			Tags     *string `json:"asset_tags"`
			IOCLinks []struct {
				IOCID flexInt `json:"ioc_id"`
			} `json:"ioc_links"`
		} `json:"assets"`
	}
	if err := c.do(ctx, "GET", "/case/assets/list", cid, nil, &v); err != nil {
		return nil, err
	}
	out := make([]Asset, len(v.Assets))
	for i, a := range v.Assets {
		out[i] = Asset{ID: int64(a.ID), Name: a.Name, TypeID: int64(a.TypeID)}
		if a.Tags != nil {
			out[i].Tags = *a.Tags
		}
		for _, l := range a.IOCLinks {
			out[i].IOCLinks = append(out[i].IOCLinks, int64(l.IOCID))
		}
	}
	return out, nil
}

// AssetDetail is one asset with everything an update must send back.
type AssetDetail struct {
	ID               int64
	Name             string
	TypeID           int64
	AnalysisStatusID int64
	LinkedIOCs       []int64
}

// Asset returns one asset of a case with its linked IOCs.
func (c *Client) Asset(ctx context.Context, cid, id int64) (AssetDetail, error) {
	var r struct {
		ID         flexInt `json:"asset_id"`
		Name       string  `json:"asset_name"`
		TypeID     flexInt `json:"asset_type_id"`
		StatusID   flexInt `json:"analysis_status_id"`
		LinkedIOCs []struct {
			IOCID flexInt `json:"ioc_id"`
		} `json:"linked_ioc"`
	}
	if err := c.do(ctx, "GET", "/case/assets/"+strconv.FormatInt(id, 10), cid, nil, &r); err != nil {
		return AssetDetail{}, err
	}
	d := AssetDetail{ID: int64(r.ID), Name: r.Name, TypeID: int64(r.TypeID), AnalysisStatusID: int64(r.StatusID)}
	for _, l := range r.LinkedIOCs {
		d.LinkedIOCs = append(d.LinkedIOCs, int64(l.IOCID))
	}
	return d, nil
}

// NewAsset is an asset to create.
type NewAsset struct {
	Name               string
	TypeID             int64
	AnalysisStatusID   int64
	CompromiseStatusID int64
	Description        string
	IP                 string
	Domain             string
	Tags               string
	IOCLinks           []int64
}

// ErrDuplicateAsset is returned by AddAsset when the case already has an
// asset with that name (case-insensitive) and type.
var ErrDuplicateAsset = errors.New("asset name already exists in this case")

// AddAsset creates an asset and returns its id. IRIS answers 400 when the
// IOC links fail even though the asset was saved; that is reported as a
// retryable error so the caller looks the asset up again.
func (c *Client) AddAsset(ctx context.Context, cid int64, a NewAsset) (int64, error) {
	links := a.IOCLinks
	if links == nil {
		links = []int64{}
	}
	body := map[string]any{"asset_name": a.Name, "asset_type_id": a.TypeID, "analysis_status_id": a.AnalysisStatusID,
		"asset_compromise_status_id": a.CompromiseStatusID, "asset_description": a.Description, "asset_ip": a.IP,
		"asset_domain": a.Domain, "asset_tags": a.Tags, "ioc_links": links, "custom_attributes": map[string]any{}}
	var r struct {
		ID flexInt `json:"asset_id"`
	}
	err := c.do(ctx, "POST", "/case/assets/add", cid, body, &r)
	var se *StatusError
	if errors.As(err, &se) && se.Status == 400 {
		switch {
		case strings.Contains(se.Message, "already exists"):
			return 0, errors.Join(ErrDuplicateAsset, err)
		case strings.Contains(se.Message, "linking IOC"):
			se.Retryable = true
		}
	}
	if err != nil {
		return 0, err
	}
	return int64(r.ID), nil
}

// SetAssetIOCLinks replaces an asset's IOC links. IRIS's asset update is not
// partial: name, type and analysis status are sent back unchanged, and
// ioc_links replaces every link, so callers pass the merged list.
func (c *Client) SetAssetIOCLinks(ctx context.Context, cid int64, a AssetDetail, links []int64) error {
	body := map[string]any{"asset_name": a.Name, "asset_type_id": a.TypeID, "ioc_links": links}
	if a.AnalysisStatusID != 0 {
		body["analysis_status_id"] = a.AnalysisStatusID
	}
	return c.do(ctx, "POST", "/case/assets/update/"+strconv.FormatInt(a.ID, 10), cid, body, nil)
}

// EventSummary is a timeline event as listed.
type EventSummary struct {
	ID   int64
	Tags string
}

// ListEvents returns the timeline events of a case (the list has no asset
// links; read one event for those).
func (c *Client) ListEvents(ctx context.Context, cid int64) ([]EventSummary, error) {
	var v struct {
		Timeline []struct {
			ID   flexInt `json:"event_id"`
			Tags *string `json:"event_tags"`
		} `json:"timeline"`
	}
	if err := c.do(ctx, "GET", "/case/timeline/events/list", cid, nil, &v); err != nil {
		return nil, err
	}
	out := make([]EventSummary, len(v.Timeline))
	for i, e := range v.Timeline {
		out[i] = EventSummary{ID: int64(e.ID)}
		if e.Tags != nil {
			out[i].Tags = *e.Tags
		}
	}
	return out, nil
}

// NewEvent is a timeline event to create.
type NewEvent struct {
	Title      string
	Date       string // "2006-01-02T15:04:05.000000", no offset
	TZ         string // "+00:00"
	CategoryID int64
	Content    string // Markdown
	Raw        string
	Source     string
	Tags       string
	Assets     []int64
	IOCs       []int64
	Color      string
}

// AddEvent creates a timeline event and returns its id.
func (c *Client) AddEvent(ctx context.Context, cid int64, e NewEvent) (int64, error) {
	nz := func(v []int64) []int64 {
		if v == nil {
			return []int64{}
		}
		return v
	}
	body := map[string]any{"event_title": e.Title, "event_date": e.Date, "event_tz": e.TZ,
		"event_category_id": e.CategoryID, "event_content": e.Content, "event_raw": e.Raw, "event_source": e.Source,
		"event_tags": e.Tags, "event_assets": nz(e.Assets), "event_iocs": nz(e.IOCs), "event_in_summary": false,
		"event_in_graph": true, "event_color": e.Color, "custom_attributes": map[string]any{}}
	var r struct {
		ID flexInt `json:"event_id"`
	}
	if err := c.do(ctx, "POST", "/case/timeline/events/add", cid, body, &r); err != nil {
		return 0, err
	}
	return int64(r.ID), nil
}

// ErrNullAttributes is returned by UpdateIOCAttributes when the IOC's
// custom_attributes is null in IRIS (created through the API without the
// key): IRIS then fails every attribute update with an HTML 500.
var ErrNullAttributes = errors.New("the IOC's custom attributes are null in IRIS")

// ErrIOCNotInCase reports an IOC that is no longer in the case (deleted or
// unlinked in IRIS): there is nothing to update.
var ErrIOCNotInCase = errors.New("the IOC is no longer in this case in IRIS (deleted or unlinked)")

// UpdateIOCAttributes writes text values into one tab of an IOC's custom
// attributes ({tab: {field: value}}, values only). IRIS ignores tabs and
// fields its IOC template lacks, and html fields, without an error. A 500
// is explained by reading the IOC: null custom_attributes are reported as
// ErrNullAttributes, an IOC no longer in the case (IRIS 2.4.20 answers an
// update of one with an HTML 500, its GET with 400 "Invalid IOC ID for this
// case") as ErrIOCNotInCase.
func (c *Client) UpdateIOCAttributes(ctx context.Context, cid, iocID int64, tab string, fields map[string]string) error {
	body := map[string]any{"custom_attributes": map[string]any{tab: fields}}
	err := c.do(ctx, "POST", "/case/ioc/update/"+strconv.FormatInt(iocID, 10), cid, body, nil)
	var se *StatusError
	if errors.As(err, &se) && se.Status == 500 {
		null, gerr := c.IOCAttributesNull(ctx, cid, iocID)
		var ge *StatusError
		switch {
		case gerr == nil && null:
			return errors.Join(ErrNullAttributes, &StatusError{Op: se.Op, Status: 500, Message: ErrNullAttributes.Error(), code: ioc.EINVALID})
		case errors.As(gerr, &ge) && ge.Status == 400 && strings.Contains(ge.Message, "Invalid IOC ID"):
			return errors.Join(ErrIOCNotInCase, &StatusError{Op: se.Op, Status: 500, Message: ErrIOCNotInCase.Error(), code: ioc.ENOTFOUND})
		}
	}
	return err
}

// IOCAttributesNull reports whether an IOC's custom_attributes is null in
// IRIS: every tab write then fails until an administrator's template push
// gives the IOC the template. The IOC list does not carry the attributes,
// so this reads the IOC.
func (c *Client) IOCAttributesNull(ctx context.Context, cid, iocID int64) (bool, error) {
	var r struct {
		Custom json.RawMessage `json:"custom_attributes"`
	}
	if err := c.do(ctx, "GET", "/case/ioc/"+strconv.FormatInt(iocID, 10), cid, nil, &r); err != nil {
		return false, err
	}
	return len(r.Custom) == 0 || string(r.Custom) == "null", nil
}

// IOCAttributes returns the values of one tab of an IOC (field → value).
func (c *Client) IOCAttributes(ctx context.Context, cid, iocID int64, tab string) (map[string]string, error) {
	var r struct {
		Custom map[string]map[string]struct {
			Value any `json:"value"`
		} `json:"custom_attributes"`
	}
	if err := c.do(ctx, "GET", "/case/ioc/"+strconv.FormatInt(iocID, 10), cid, nil, &r); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, f := range r.Custom[tab] {
		s, _ := f.Value.(string)
		out[k] = s
	}
	return out, nil
}

// AttributeTemplate is an object type's custom attribute template.
type AttributeTemplate struct {
	ID      int64
	For     string
	Content map[string]map[string]map[string]any
}

// AttributeTemplates lists the templates (administrator only).
func (c *Client) AttributeTemplates(ctx context.Context) ([]AttributeTemplate, error) {
	var rows []struct {
		ID      flexInt         `json:"attribute_id"`
		For     string          `json:"attribute_for"`
		Content json.RawMessage `json:"attribute_content"`
	}
	if err := c.do(ctx, "GET", "/manage/attributes/list", -1, nil, &rows); err != nil {
		return nil, err
	}
	out := make([]AttributeTemplate, 0, len(rows))
	for _, r := range rows {
		t := AttributeTemplate{ID: int64(r.ID), For: r.For}
		// The content is a JSON object, or a JSON string holding one.
		var s string
		raw := []byte(r.Content)
		if json.Unmarshal(raw, &s) == nil {
			raw = []byte(s)
		}
		if len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &t.Content); err != nil {
				return nil, errors.New("iris: attribute template content is not an object of tabs")
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// UpdateAttributeTemplate saves a template (administrator only). IRIS then
// pushes it onto every existing object of its type: missing tabs and fields
// are added, objects whose custom_attributes were null get the whole
// template, and every stored value is kept. Both overwrite flags are always
// false: partial_overwrite resets every tab of the template on every object
// of every case to its defaults, and complete_overwrite replaces all of them
// (contract, "Observed on a real IRIS", item 12), wiping what analysts and
// other modules wrote.
func (c *Client) UpdateAttributeTemplate(ctx context.Context, id int64, content map[string]map[string]map[string]any) error {
	b, err := json.Marshal(content)
	if err != nil {
		return err
	}
	body := map[string]any{"attribute_content": string(b), "partial_overwrite": false, "complete_overwrite": false}
	return c.do(ctx, "POST", "/manage/attributes/update/"+strconv.FormatInt(id, 10), -1, body, nil)
}

// EnsureIOCTab makes sure IRIS's IOC attribute template has the tab with
// the given fields (name → {type, mandatory, value}), keeping every other
// tab and field of the template as it is, and pushes the template onto
// existing IOCs when it changed, or always when force is set (force
// repairs IOCs whose custom_attributes are null: IRIS gives them the whole
// template). Stored values are never reset (see UpdateAttributeTemplate).
// It reports whether it pushed. Administrator only.
func (c *Client) EnsureIOCTab(ctx context.Context, tab string, fields map[string]map[string]any, force bool) (bool, error) {
	list, err := c.AttributeTemplates(ctx)
	if err != nil {
		return false, fmt.Errorf("read IRIS attribute templates (administrator key needed): %w", err)
	}
	var tmpl *AttributeTemplate
	for i := range list {
		if list[i].For == "ioc" {
			tmpl = &list[i]
		}
	}
	if tmpl == nil {
		return false, errors.New("IRIS has no IOC attribute template")
	}
	content := tmpl.Content
	if content == nil {
		content = map[string]map[string]map[string]any{}
	}
	have := content[tab]
	if have == nil {
		have = map[string]map[string]any{}
		content[tab] = have
	}
	changed := false
	for name, def := range fields {
		if old, ok := have[name]; !ok || old["type"] != def["type"] {
			have[name] = def
			changed = true
		}
	}
	if !changed && !force {
		return false, nil
	}
	if err := c.UpdateAttributeTemplate(ctx, tmpl.ID, content); err != nil {
		return false, fmt.Errorf("update IRIS's IOC template: %w", err)
	}
	return true, nil
}
