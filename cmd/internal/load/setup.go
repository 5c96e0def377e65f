package load

import (
	"fmt"
	"strings"
)

// SetupConfig is the configuration `leadflow load --setup` applies: one
// default team of 20 always-available reps with room for every lead of a
// bounded run, so journeys end assigned (queued only when capacity runs out),
// and the standard sales pipeline.
var SetupConfig = func() string {
	var b strings.Builder
	b.WriteString(`
routing:
  default_team_id: load
  teams:
    - id: load
      name: Load test
      team_lead_rep_id: load-rep-0
      reps:
`)
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "        - {id: load-rep-%d, weight: 1, capacity: 100000}\n", i)
	}
	b.WriteString(`  sla_policies:
    - {id: standard, first_touch_within: 3600s, touches_required: 2, touches_within: 86400s, action: BREACH_ACTION_REASSIGN}
pipelines:
  - default: true
    name: Sales
    stages:
      - {name: Discovery, probability_bps: 1000, kind: STAGE_KIND_OPEN}
      - {name: Proposal, probability_bps: 5000, kind: STAGE_KIND_OPEN}
      - {name: Closed Won, probability_bps: 10000, kind: STAGE_KIND_WON}
      - {name: Closed Lost, probability_bps: 0, kind: STAGE_KIND_LOST}
`)
	return b.String()
}()
