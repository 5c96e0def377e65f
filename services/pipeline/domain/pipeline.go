package domain

import (
	"fmt"
	"strings"
	"time"
)

// StageKind says what being in a stage means.
type StageKind int

// Stage kinds.
const (
	StageOpen StageKind = iota + 1
	StageWon
	StageLost
)

func (k StageKind) String() string {
	switch k {
	case StageOpen:
		return "open"
	case StageWon:
		return "won"
	case StageLost:
		return "lost"
	}
	return fmt.Sprintf("StageKind(%d)", int(k))
}

// Stage is one step of a pipeline. Its ID never changes.
type Stage struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	ProbabilityBPS int32     `json:"probability_bps"`
	Kind           StageKind `json:"kind"`
}

// StageSpec describes a stage to create.
type StageSpec struct {
	Name           string
	ProbabilityBPS int32
	Kind           StageKind
}

// Pipeline is an ordered list of stages.
type Pipeline struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Stages    []Stage   `json:"stages"`
	IsDefault bool      `json:"is_default"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// DefaultPipelineID is the id of the pipeline shipped with LeadFlow.
const DefaultPipelineID = "default"

// Stage ids of the default pipeline.
const (
	StageDiscovery   = "discovery"
	StageDemo        = "demo"
	StageProposal    = "proposal"
	StageNegotiation = "negotiation"
	StageClosedWon   = "closed-won"
	StageClosedLost  = "closed-lost"
)

// DefaultPipeline is the pipeline present on a fresh install.
func DefaultPipeline(now time.Time) Pipeline {
	return Pipeline{
		ID:        DefaultPipelineID,
		Name:      "Sales",
		IsDefault: true,
		CreatedAt: now,
		UpdatedAt: now,
		Stages: []Stage{
			{ID: StageDiscovery, Name: "Discovery", ProbabilityBPS: 1000, Kind: StageOpen},
			{ID: StageDemo, Name: "Demo/Presentation", ProbabilityBPS: 2500, Kind: StageOpen},
			{ID: StageProposal, Name: "Proposal", ProbabilityBPS: 5000, Kind: StageOpen},
			{ID: StageNegotiation, Name: "Negotiation", ProbabilityBPS: 7500, Kind: StageOpen},
			{ID: StageClosedWon, Name: "Closed Won", ProbabilityBPS: BPS, Kind: StageWon},
			{ID: StageClosedLost, Name: "Closed Lost", ProbabilityBPS: 0, Kind: StageLost},
		},
	}
}

// MaxStages is the most stages a pipeline may have.
const MaxStages = 50

// NewPipeline builds a pipeline from specs; newID gives stage ids.
func NewPipeline(id, name string, specs []StageSpec, newID func() string, now time.Time) (Pipeline, error) {
	p := Pipeline{ID: id, Name: strings.TrimSpace(name), CreatedAt: now, UpdatedAt: now}
	var vs violations
	if p.Name == "" {
		vs.add("name", "must not be blank")
	}
	for i, s := range specs {
		st, err := newStage(newID(), s, fmt.Sprintf("stages[%d]", i))
		if err != nil {
			vs = append(vs, err.(*ValidationError).Violations...)
			continue
		}
		p.Stages = append(p.Stages, st)
	}
	if err := vs.err(); err != nil {
		return Pipeline{}, err
	}
	if err := p.Validate(); err != nil {
		return Pipeline{}, err
	}
	return p, nil
}

func newStage(id string, s StageSpec, field string) (Stage, error) {
	var vs violations
	st := Stage{ID: id, Name: strings.TrimSpace(s.Name), ProbabilityBPS: s.ProbabilityBPS, Kind: s.Kind}
	if st.Name == "" {
		vs.add(field+".name", "must not be blank")
	}
	if st.ProbabilityBPS < 0 || st.ProbabilityBPS > BPS {
		vs.add(field+".probability_bps", "must be between 0 and 10000")
	}
	switch st.Kind {
	case StageOpen:
	case StageWon:
		if st.ProbabilityBPS != BPS {
			vs.add(field+".probability_bps", "a won stage has 10000 bp")
		}
	case StageLost:
		if st.ProbabilityBPS != 0 {
			vs.add(field+".probability_bps", "a lost stage has 0 bp")
		}
	default:
		vs.add(field+".kind", "must be open, won or lost")
	}
	return st, vs.err()
}

// Validate checks the pipeline's invariants: at least one open stage, exactly
// one won and one lost stage, unique ids and case-insensitively unique names,
// at most MaxStages stages.
func (p *Pipeline) Validate() error {
	var vs violations
	var open, won, lost int
	names := map[string]bool{}
	ids := map[string]bool{}
	for _, s := range p.Stages {
		switch s.Kind {
		case StageOpen:
			open++
		case StageWon:
			won++
		case StageLost:
			lost++
		}
		n := strings.ToLower(s.Name)
		if names[n] {
			vs.add("stages", "stage name %q is used twice", s.Name)
		}
		names[n] = true
		if ids[s.ID] {
			vs.add("stages", "stage id %q is used twice", s.ID)
		}
		ids[s.ID] = true
	}
	if open == 0 {
		vs.add("stages", "needs at least one open stage")
	}
	if won != 1 {
		vs.add("stages", "needs exactly one won stage, has %d", won)
	}
	if lost != 1 {
		vs.add("stages", "needs exactly one lost stage, has %d", lost)
	}
	if len(p.Stages) > MaxStages {
		vs.add("stages", "at most %d stages", MaxStages)
	}
	return vs.err()
}

// Stage returns the stage with the id.
func (p *Pipeline) Stage(id string) (Stage, bool) {
	for _, s := range p.Stages {
		if s.ID == id {
			return s, true
		}
	}
	return Stage{}, false
}

func (p *Pipeline) index(id string) int {
	for i, s := range p.Stages {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// FirstOpenStage is where new deals enter.
func (p *Pipeline) FirstOpenStage() Stage { return p.firstOf(StageOpen) }

// WonStage is the pipeline's won stage.
func (p *Pipeline) WonStage() Stage { return p.firstOf(StageWon) }

// LostStage is the pipeline's lost stage.
func (p *Pipeline) LostStage() Stage { return p.firstOf(StageLost) }

func (p *Pipeline) firstOf(k StageKind) Stage {
	for _, s := range p.Stages {
		if s.Kind == k {
			return s
		}
	}
	return Stage{}
}

// AddStage inserts a stage before beforeID; with an empty beforeID an open
// stage goes before the first closed stage and a closed one at the end.
func (p *Pipeline) AddStage(id string, spec StageSpec, beforeID string, now time.Time) (Stage, error) {
	st, err := newStage(id, spec, "stage")
	if err != nil {
		return Stage{}, err
	}
	at := len(p.Stages)
	switch {
	case beforeID != "":
		at = p.index(beforeID)
		if at < 0 {
			return Stage{}, notFound("stage %q in pipeline %q", beforeID, p.ID)
		}
	case st.Kind == StageOpen:
		for i, s := range p.Stages {
			if s.Kind != StageOpen {
				at = i
				break
			}
		}
	}
	next := *p
	next.Stages = append(append(append([]Stage{}, p.Stages[:at]...), st), p.Stages[at:]...)
	if err := next.Validate(); err != nil {
		return Stage{}, err
	}
	p.Stages = next.Stages
	p.UpdatedAt = now
	return st, nil
}

// RenameStage renames a stage and, for an open stage, may change its
// probability (nil keeps it).
func (p *Pipeline) RenameStage(id, name string, bps *int32, now time.Time) error {
	i := p.index(id)
	if i < 0 {
		return notFound("stage %q in pipeline %q", id, p.ID)
	}
	st := p.Stages[i]
	spec := StageSpec{Name: name, ProbabilityBPS: st.ProbabilityBPS, Kind: st.Kind}
	if bps != nil {
		spec.ProbabilityBPS = *bps
	}
	ns, err := newStage(id, spec, "stage")
	if err != nil {
		return err
	}
	next := append([]Stage{}, p.Stages...)
	next[i] = ns
	cp := *p
	cp.Stages = next
	if err := cp.Validate(); err != nil {
		return err
	}
	p.Stages = next
	p.UpdatedAt = now
	return nil
}

// ReorderStages sets the stage order; ids must name every stage once.
func (p *Pipeline) ReorderStages(ids []string, now time.Time) error {
	var vs violations
	if len(ids) != len(p.Stages) {
		vs.add("stage_ids", "must name all %d stages, names %d", len(p.Stages), len(ids))
		return vs.err()
	}
	seen := map[string]bool{}
	next := make([]Stage, 0, len(ids))
	for i, id := range ids {
		st, ok := p.Stage(id)
		if !ok {
			vs.add(fmt.Sprintf("stage_ids[%d]", i), "unknown stage %q", id)
			continue
		}
		if seen[id] {
			vs.add(fmt.Sprintf("stage_ids[%d]", i), "stage %q named twice", id)
			continue
		}
		seen[id] = true
		next = append(next, st)
	}
	if err := vs.err(); err != nil {
		return err
	}
	p.Stages = next
	p.UpdatedAt = now
	return nil
}
