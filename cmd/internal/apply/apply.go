// Package apply reads a LeadFlow configuration file (one YAML document with
// the routing configuration, the scoring model, pipelines and campaign spend)
// and applies it through the services' public APIs, like `kubectl apply`:
// what is already as described is left alone, what differs is changed, and
// nothing that the file does not mention is deleted.
//
// Each section is the protobuf message of the owning API written in YAML
// (protojson field names, snake_case or lowerCamelCase; enums by name;
// durations as "1800s"; timestamps as RFC 3339):
//
//	routing:        leadflow.routing.v1.RoutingConfig
//	scoring:
//	  model:        leadflow.scoring.v1.ScoringModel (activated when it differs from the active one)
//	pipelines:      list of leadflow.pipeline.v1.CreatePipelineRequest, plus `default: true`
//	                for the pipeline qualified leads land in
//	campaign_spend: list of leadflow.reporting.v1.RecordCampaignSpendRequest
package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/leadflow/leadflow/cmd/internal/client"
	pipelinev1 "github.com/leadflow/leadflow/gen/go/leadflow/pipeline/v1"
	reportingv1 "github.com/leadflow/leadflow/gen/go/leadflow/reporting/v1"
	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	scoringv1 "github.com/leadflow/leadflow/gen/go/leadflow/scoring/v1"
)

// File is a parsed configuration file.
type File struct {
	Routing       *routingv1.RoutingConfig
	ScoringModel  *scoringv1.ScoringModel
	Pipelines     []Pipeline
	CampaignSpend []*reportingv1.RecordCampaignSpendRequest
}

// Pipeline is one pipeline of the file.
type Pipeline struct {
	// Default marks the default pipeline (id "default"): it is matched by
	// that id instead of by name.
	Default bool
	Spec    *pipelinev1.CreatePipelineRequest
}

type rawFile struct {
	Routing       json.RawMessage   `json:"routing"`
	Scoring       *rawScoring       `json:"scoring"`
	Pipelines     []json.RawMessage `json:"pipelines"`
	CampaignSpend []json.RawMessage `json:"campaign_spend"`
}

type rawScoring struct {
	Model json.RawMessage `json:"model"`
}

// Parse decodes a configuration file. Unknown keys are errors, named with
// their section.
func Parse(data []byte) (*File, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var raw rawFile
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("top level (routing, scoring, pipelines, campaign_spend): %w", err)
	}
	f := &File{}
	um := protojson.UnmarshalOptions{}
	if len(raw.Routing) > 0 && string(raw.Routing) != "null" {
		f.Routing = &routingv1.RoutingConfig{}
		if err := um.Unmarshal(raw.Routing, f.Routing); err != nil {
			return nil, fmt.Errorf("routing: %w", err)
		}
	}
	if raw.Scoring != nil && len(raw.Scoring.Model) > 0 && string(raw.Scoring.Model) != "null" {
		f.ScoringModel = &scoringv1.ScoringModel{}
		if err := um.Unmarshal(raw.Scoring.Model, f.ScoringModel); err != nil {
			return nil, fmt.Errorf("scoring.model: %w", err)
		}
	}
	for i, p := range raw.Pipelines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p, &m); err != nil {
			return nil, fmt.Errorf("pipelines[%d]: %w", i, err)
		}
		var pl Pipeline
		if d, ok := m["default"]; ok {
			if err := json.Unmarshal(d, &pl.Default); err != nil {
				return nil, fmt.Errorf("pipelines[%d].default: %w", i, err)
			}
			delete(m, "default")
		}
		rest, _ := json.Marshal(m)
		pl.Spec = &pipelinev1.CreatePipelineRequest{}
		if err := um.Unmarshal(rest, pl.Spec); err != nil {
			return nil, fmt.Errorf("pipelines[%d]: %w", i, err)
		}
		f.Pipelines = append(f.Pipelines, pl)
	}
	for i, c := range raw.CampaignSpend {
		r := &reportingv1.RecordCampaignSpendRequest{}
		if err := um.Unmarshal(c, r); err != nil {
			return nil, fmt.Errorf("campaign_spend[%d]: %w", i, err)
		}
		f.CampaignSpend = append(f.CampaignSpend, r)
	}
	if f.Routing == nil && f.ScoringModel == nil && len(f.Pipelines) == 0 && len(f.CampaignSpend) == 0 {
		return nil, errors.New("the file configures nothing (expected routing, scoring, pipelines or campaign_spend)")
	}
	return f, nil
}

// Result is what applying one object did.
type Result struct {
	Kind   string // "routing", "scoring-model", "pipeline", "campaign-spend"
	Name   string
	Action string // "created", "configured", "unchanged", "recorded"
	Detail string
}

func (r Result) String() string {
	s := fmt.Sprintf("%s/%s %s", r.Kind, r.Name, r.Action)
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

// Apply applies every section of f, in the order routing, scoring model,
// pipelines, campaign spend, and stops at the first error (naming the
// ApplyText waits until the five services are ready, then parses and
// applies a configuration file's text.
func ApplyText(ctx context.Context, c *client.Clients, text string) ([]Result, error) {
	if err := c.WaitReady(ctx); err != nil {
		return nil, err
	}
	f, err := Parse([]byte(text))
	if err != nil {
		return nil, err
	}
	return Apply(ctx, c, f)
}

// object and the service's answer).
func Apply(ctx context.Context, c *client.Clients, f *File) ([]Result, error) {
	var out []Result
	if f.Routing != nil {
		r, err := applyRouting(ctx, c, f.Routing)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	if f.ScoringModel != nil {
		r, err := applyModel(ctx, c, f.ScoringModel)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	for _, p := range f.Pipelines {
		r, err := applyPipeline(ctx, c, p)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	for _, s := range f.CampaignSpend {
		resp, err := c.Reporting.RecordCampaignSpend(ctx, s)
		if err != nil {
			return out, client.Wrap("campaign-spend/"+s.GetCampaign()+": RecordCampaignSpend", err)
		}
		action := "recorded"
		if resp.GetReplaced() {
			action = "configured"
		}
		out = append(out, Result{Kind: "campaign-spend", Name: s.GetCampaign(), Action: action,
			Detail: fmt.Sprintf("%s %s", money(s.GetAmount().GetAmountMinor()), s.GetAmount().GetCurrencyCode())})
	}
	return out, nil
}

func money(minor int64) string {
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	return fmt.Sprintf("%s%d.%02d", sign, minor/100, minor%100)
}

func applyRouting(ctx context.Context, c *client.Clients, want *routingv1.RoutingConfig) (Result, error) {
	res := Result{Kind: "routing", Name: "config"}
	var current *routingv1.RoutingConfig
	got, err := c.Routing.GetConfig(ctx, &routingv1.GetConfigRequest{})
	switch {
	case err == nil:
		current = got.GetConfig()
	case status.Code(err) == codes.NotFound:
	default:
		return res, client.Wrap("routing/config: GetConfig", err)
	}
	if current != nil && sameRouting(current, want) {
		res.Action = "unchanged"
		res.Detail = fmt.Sprintf("version %d", current.GetVersion())
		return res, nil
	}
	resp, err := c.Routing.ApplyConfig(ctx, &routingv1.ApplyConfigRequest{Config: want, ExpectedVersion: current.GetVersion()})
	if err != nil {
		return res, client.Wrap("routing/config: ApplyConfig", err)
	}
	res.Action = "configured"
	if current == nil {
		res.Action = "created"
	}
	cfg := resp.GetConfig()
	reps := 0
	for _, t := range cfg.GetTeams() {
		reps += len(t.GetReps())
	}
	res.Detail = fmt.Sprintf("version %d: %d teams, %d reps, %d rules, %d SLA policies",
		cfg.GetVersion(), len(cfg.GetTeams()), reps, len(cfg.GetRules()), len(cfg.GetSlaPolicies()))
	return res, nil
}

// sameRouting compares two configurations without their output-only fields.
func sameRouting(a, b *routingv1.RoutingConfig) bool {
	strip := func(c *routingv1.RoutingConfig) *routingv1.RoutingConfig {
		c = proto.Clone(c).(*routingv1.RoutingConfig)
		c.Version, c.CreatedAt, c.CreatedBy, c.Comment = 0, nil, "", ""
		return c
	}
	return proto.Equal(strip(a), strip(b))
}

func applyModel(ctx context.Context, c *client.Clients, want *scoringv1.ScoringModel) (Result, error) {
	res := Result{Kind: "scoring-model", Name: want.GetName()}
	got, err := c.Scoring.GetModel(ctx, &scoringv1.GetModelRequest{})
	switch {
	case err == nil:
		if sameModel(got.GetModel(), want) {
			res.Action = "unchanged"
			res.Detail = fmt.Sprintf("version %d active", got.GetModel().GetVersion())
			return res, nil
		}
	case status.Code(err) == codes.NotFound:
	default:
		return res, client.Wrap("scoring-model/"+want.GetName()+": GetModel", err)
	}
	resp, err := c.Scoring.CreateModel(ctx, &scoringv1.CreateModelRequest{Model: want, Activate: true})
	if err != nil {
		return res, client.Wrap("scoring-model/"+want.GetName()+": CreateModel", err)
	}
	res.Action = "created"
	res.Detail = fmt.Sprintf("version %d active, MQL at %d points", resp.GetModel().GetVersion(), resp.GetModel().GetThresholds().GetMql())
	return res, nil
}

// sameModel compares the active model with the file's, ignoring output-only
// fields and the descriptions the service generates for rules written
// without one.
func sameModel(active, want *scoringv1.ScoringModel) bool {
	a := proto.Clone(active).(*scoringv1.ScoringModel)
	w := proto.Clone(want).(*scoringv1.ScoringModel)
	for _, m := range []*scoringv1.ScoringModel{a, w} {
		m.Version, m.Active, m.CreatedAt, m.CreatedBy, m.ActivatedAt = 0, false, nil, "", nil
	}
	desc := map[string]string{}
	for _, r := range a.GetFitRules() {
		desc[r.GetId()] = r.GetDescription()
	}
	for _, r := range w.GetFitRules() {
		if r.GetDescription() == "" {
			r.Description = desc[r.GetId()]
		}
	}
	return proto.Equal(a, w)
}

func applyPipeline(ctx context.Context, c *client.Clients, p Pipeline) (Result, error) {
	res := Result{Kind: "pipeline", Name: p.Spec.GetName()}
	var existing *pipelinev1.Pipeline
	if p.Default {
		got, err := c.Pipeline.GetPipeline(ctx, &pipelinev1.GetPipelineRequest{})
		switch {
		case err == nil:
			existing = got.GetPipeline()
		case status.Code(err) == codes.NotFound:
		default:
			return res, client.Wrap("pipeline/"+res.Name+": GetPipeline", err)
		}
	} else {
		var token string
		for existing == nil {
			page, err := c.Pipeline.ListPipelines(ctx, &pipelinev1.ListPipelinesRequest{PageSize: 200, PageToken: token})
			if err != nil {
				return res, client.Wrap("pipeline/"+res.Name+": ListPipelines", err)
			}
			for _, pl := range page.GetPipelines() {
				if strings.EqualFold(pl.GetName(), p.Spec.GetName()) {
					existing = pl
					break
				}
			}
			token = page.GetNextPageToken()
			if token == "" {
				break
			}
		}
	}
	if existing == nil {
		if p.Default {
			return res, fmt.Errorf("pipeline/%s: the pipeline service has no default pipeline to configure", res.Name)
		}
		resp, err := c.Pipeline.CreatePipeline(ctx, p.Spec)
		if err != nil {
			return res, client.Wrap("pipeline/"+res.Name+": CreatePipeline", err)
		}
		res.Action = "created"
		res.Detail = fmt.Sprintf("id %s, %d stages", resp.GetPipeline().GetId(), len(resp.GetPipeline().GetStages()))
		return res, nil
	}
	res.Name = existing.GetName()
	// Existing pipeline: add the stages it lacks and set the probabilities of
	// open stages; stages the file does not mention are kept (never pruned:
	// deals may be in them).
	byName := map[string]*pipelinev1.Stage{}
	for _, s := range existing.GetStages() {
		byName[strings.ToLower(s.GetName())] = s
	}
	var changes []string
	for _, spec := range p.Spec.GetStages() {
		cur, ok := byName[strings.ToLower(spec.GetName())]
		switch {
		case !ok:
			if _, err := c.Pipeline.AddStage(ctx, &pipelinev1.AddStageRequest{PipelineId: existing.GetId(), Stage: spec}); err != nil {
				return res, client.Wrap("pipeline/"+res.Name+": AddStage "+spec.GetName(), err)
			}
			changes = append(changes, "added stage "+spec.GetName())
		case cur.GetKind() != spec.GetKind():
			return res, fmt.Errorf("pipeline/%s: stage %q is %s on the server and %s in the file; change it by hand",
				res.Name, spec.GetName(), cur.GetKind(), spec.GetKind())
		case cur.GetKind() == pipelinev1.StageKind_STAGE_KIND_OPEN && cur.GetProbabilityBps() != spec.GetProbabilityBps():
			bps := spec.GetProbabilityBps()
			if _, err := c.Pipeline.RenameStage(ctx, &pipelinev1.RenameStageRequest{
				PipelineId: existing.GetId(), StageId: cur.GetId(), Name: cur.GetName(), ProbabilityBps: &bps,
			}); err != nil {
				return res, client.Wrap("pipeline/"+res.Name+": RenameStage "+spec.GetName(), err)
			}
			changes = append(changes, fmt.Sprintf("%s %d%%", cur.GetName(), bps/100))
		}
	}
	if len(changes) == 0 {
		res.Action = "unchanged"
		res.Detail = fmt.Sprintf("id %s, %d stages", existing.GetId(), len(existing.GetStages()))
		return res, nil
	}
	res.Action = "configured"
	res.Detail = strings.Join(changes, ", ")
	return res, nil
}
