// Package store is routing's Redis adapter.
//
// Keys (every key a script touches together shares one hash tag):
//
//	lf:routing:{config}:current            current configuration version
//	lf:routing:{config}:v:<n>              RoutingConfig version n (protobuf)
//	lf:routing:{config}:versions           zset of versions
//	lf:routing:{team:<id>}:cfgver          newest configuration version the team has seen
//	lf:routing:{team:<id>}:load            hash rep → open leads (capacity in use)
//	lf:routing:{team:<id>}:swrr            hash rep → current weight of the smooth weighted round-robin
//	lf:routing:{team:<id>}:queue           zset: the assignment queue (heat, score, arrival)
//	lf:routing:{team:<id>}:qseq            arrival counter of the queue
//	lf:routing:{team:<id>}:parked          zset: parked leads (by time)
//	lf:routing:{team:<id>}:lead:<lead>     hash: the lead's routing record
//	lf:routing:{team:<id>}:excl:<lead>     set: reps that may not get the lead (rejected or breached it)
//	lf:routing:{team:<id>}:brx:<lead>      set: reps that breached the lead's SLA (also in excl)
//	lf:routing:{team:<id>}:touch:<lead>    set: touch ids seen (idempotent touches)
//	lf:routing:{team:<id>}:rep:<rep>       zset: the rep's open leads (by assignment time)
//	lf:routing:{team:<id>}:inbox:<rep>     stream: the rep's inbox
//	lf:routing:ptr:<lead>                  team the lead lives in
//	lf:routing:decision:<id>               RoutingDecision (protobuf)
//	lf:routing:decisions:<lead>            zset of the lead's decision ids (by time)
package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	json "github.com/segmentio/encoding/json"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/leadflow/leadflow/gen/go/leadflow/routing/v1"
	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/platform/redisx"
)

//go:embed team.lua
var teamLua string

var teamScript = redis.NewScript(teamLua)

// ErrNotFound is returned when a stored object does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an expected version did not match.
var ErrConflict = errors.New("version conflict")

// Store is routing's state in Redis.
type Store struct {
	rdb redis.UniversalClient
	// shared sends the team claims, team-script calls and record reads of
	// concurrent callers in one round trip.
	shared *redisx.Coalesced
	// routes sends the "route" calls of concurrent callers to a team as
	// one call of the script's "routes" op (at most maxRoutesPerCall).
	routes *coalesce.Group[routeCall, *Result]
}

// New returns a store on rdb.
func New(rdb redis.UniversalClient) *Store {
	s := &Store{rdb: rdb, shared: redisx.NewCoalesced(rdb, 256)}
	s.routes = coalesce.NewFlights(maxRoutesPerCall, 2, s.runRoutes)
	return s
}

// maxRoutesPerCall is the most "route" calls one script call takes: the script
// holds Redis for each lead's few commands (about 40 µs), so a batch stays
// under about 2 ms.
const maxRoutesPerCall = 48

// Client is the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// TeamPrefix is the key prefix of a team (with its hash tag).
func TeamPrefix(team string) string { return "lf:routing:{team:" + team + "}:" }

func ptrKey(lead string) string       { return "lf:routing:ptr:" + lead }
func decisionKey(id string) string    { return "lf:routing:decision:" + id }
func decisionsKey(lead string) string { return "lf:routing:decisions:" + lead }

const (
	cfgCurrent  = "lf:routing:{config}:current"
	cfgVersions = "lf:routing:{config}:versions"
	cfgPrefix   = "lf:routing:{config}:v:"
)

// ---------------------------------------------------------------- config

var applyScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur ~= tonumber(ARGV[1]) then return -cur - 1 end
local v = cur + 1
redis.call('SET', KEYS[3] .. v, ARGV[2])
redis.call('ZADD', KEYS[2], v, v)
redis.call('SET', KEYS[1], v)
return v
`)

// ApplyConfig stores a new version built by build(newVersion) when the
// current version is still expected. It returns ErrConflict (with the actual
// version) otherwise.
func (s *Store) ApplyConfig(ctx context.Context, expected int64, build func(version int64) ([]byte, error)) (int64, error) {
	b, err := build(expected + 1)
	if err != nil {
		return 0, err
	}
	v, err := applyScript.Run(ctx, s.rdb, []string{cfgCurrent, cfgVersions, cfgPrefix}, expected, b).Int64()
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return -v - 1, ErrConflict
	}
	return v, nil
}

// CurrentVersion is the current configuration version (0 = none).
func (s *Store) CurrentVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, cfgCurrent).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// Config loads a configuration version (0 = current).
func (s *Store) Config(ctx context.Context, version int64) (*routingv1.RoutingConfig, error) {
	if version == 0 {
		v, err := s.CurrentVersion(ctx)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, ErrNotFound
		}
		version = v
	}
	b, err := s.rdb.Get(ctx, cfgPrefix+strconv.FormatInt(version, 10)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c := &routingv1.RoutingConfig{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("decode config %d: %w", version, err)
	}
	return c, nil
}

// Versions lists version numbers newest first, starting below before (0 = newest).
func (s *Store) Versions(ctx context.Context, before int64, limit int) ([]int64, error) {
	max := "+inf"
	if before > 0 {
		max = "(" + strconv.FormatInt(before, 10)
	}
	ids, err := s.rdb.ZRevRangeByScore(ctx, cfgVersions, &redis.ZRangeBy{Max: max, Min: "-inf", Count: int64(limit)}).Result()
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		n, _ := strconv.ParseInt(id, 10, 64)
		out = append(out, n)
	}
	return out, nil
}

var teamVersionScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return cur
`)

// SetTeamVersion raises the configuration version a team's scripts accept
// as current; older instances then reload before deciding.
func (s *Store) SetTeamVersion(ctx context.Context, team string, version int64) error {
	return teamVersionScript.Run(ctx, s.rdb, []string{TeamPrefix(team) + "cfgver"}, version).Err()
}

// ---------------------------------------------------------------- team script

// Cand is a statically eligible rep handed to the script.
type Cand struct {
	ID  string `json:"id"`
	W   int    `json:"w"`
	Cap int    `json:"cap"`
}

// Op is one call of the team script.
type Op struct {
	Op      string   `json:"op"`
	Team    string   `json:"team"`
	Lead    string   `json:"lead"`
	Now     int64    `json:"now"`
	Ver     int64    `json:"ver"`
	Cands   []Cand   `json:"cands"`
	Dec     string   `json:"dec"`
	Decs    []string `json:"decs"`
	Pref    string   `json:"pref"`
	Strict  bool     `json:"strict"`
	Force   bool     `json:"force"`
	Req     string   `json:"req"`
	TP      string   `json:"tp"`
	Heat    int      `json:"heat"`
	Score   int      `json:"score"`
	Reasons string   `json:"r"`
	Pol     string   `json:"pol"`
	FTW     int64    `json:"ftw"`
	TW      int64    `json:"tw"`
	TReq    int      `json:"treq"`
	Mode    string   `json:"mode"`
	NewSt   string   `json:"newst"`
	Rep     string   `json:"rep"`
	Reason  string   `json:"reason"`
	To      string   `json:"to"`
	TID     string   `json:"tid"`
	Seq     int64    `json:"seq"`
	Kind    string   `json:"kind"`
	Action  string   `json:"action"`
	ParkAft int      `json:"parkafter"`
	Org     string   `json:"org"`
}

// Assigned is one lead the script assigned.
type Assigned struct {
	Lead   string         `json:"lead"`
	Rep    string         `json:"rep"`
	Seq    int64          `json:"seq"`
	Dec    string         `json:"dec"`
	FTD    int64          `json:"ftd"`
	TDue   int64          `json:"tdue"`
	Pol    string         `json:"pol"`
	TP     string         `json:"tp"`
	Heat   int            `json:"heat"`
	Score  int            `json:"score"`
	Org    string         `json:"org"`
	Loads  map[string]int `json:"loads"`
	Excl   []string       `json:"excl"`
	Brx    []string       `json:"brx"`
	Before map[string]int `json:"before"`
}

// Result is what the team script answers.
type Result struct {
	St string `json:"st"`
	Assigned
	State   string         `json:"state"`
	Ver     int64          `json:"ver"`
	Prev    string         `json:"prev"`
	From    string         `json:"from"`
	PrevSeq int64          `json:"prevseq"`
	First   bool           `json:"first"`
	Within  bool           `json:"within"`
	Tch     int            `json:"tch"`
	TReq    int            `json:"treq"`
	Held    bool           `json:"held"` // a breach found the assignment still held
	Drained []Assigned     `json:"drained"`
	Loads   map[string]int `json:"loads"`
}

// Run calls the team script. profile and score are stored with the lead by
// op "route". Concurrent "route" calls to a team share one script call
// (each answers as if it ran alone, in the batch's order).
func (s *Store) Run(ctx context.Context, op Op, profile, score []byte) (*Result, error) {
	if op.Op == "route" {
		return s.routes.Do(ctx, routeCall{op: op, profile: profile, score: score})
	}
	return s.run(ctx, op, profile, score)
}

func (s *Store) run(ctx context.Context, op Op, profile, score []byte) (*Result, error) {
	if op.Cands == nil {
		op.Cands = []Cand{}
	}
	if op.Decs == nil {
		op.Decs = []string{}
	}
	in, err := json.Marshal(op)
	if err != nil {
		return nil, err
	}
	// Shared with the routes decided at the same time: one round trip for
	// them all, each call still atomic.
	raw, err := s.shared.Eval(ctx, teamScript, []string{TeamPrefix(op.Team) + "cfgver"}, in, profile, score).Text()
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if err := json.Unmarshal([]byte(raw), res); err != nil {
		return nil, fmt.Errorf("team script answer %q: %w", truncate(raw, 200), err)
	}
	return res, nil
}

type routeCall struct {
	op             Op
	profile, score []byte
}

// routeItem is one lead of a "routes" call: a route Op without the
// fields the batch shares (team, version, candidates).
type routeItem struct {
	Lead    string `json:"lead"`
	Now     int64  `json:"now"`
	Dec     string `json:"dec"`
	Pref    string `json:"pref"`
	Strict  bool   `json:"strict"`
	Force   bool   `json:"force"`
	Req     string `json:"req"`
	TP      string `json:"tp"`
	Heat    int    `json:"heat"`
	Score   int    `json:"score"`
	Reasons string `json:"r"`
	Pol     string `json:"pol"`
	FTW     int64  `json:"ftw"`
	TW      int64  `json:"tw"`
	TReq    int    `json:"treq"`
	Org     string `json:"org"`
}

type routesRequest struct {
	Op    string          `json:"op"`
	Team  string          `json:"team"`
	Ver   int64           `json:"ver"`
	Cands json.RawMessage `json:"cands"` // encoded once: it is also the batch's key
	Items []routeItem     `json:"items"`
}

type routesAnswer struct {
	St    string         `json:"st"`
	Ver   int64          `json:"ver"`
	Loads map[string]int `json:"loads"`
	Items []*Result      `json:"items"`
}

// runRoutes sends the calls of each team (with the same configuration
// version and candidates) as one "routes" call; the teams' calls go
// together through the shared pipeline.
func (s *Store) runRoutes(ctx context.Context, calls []routeCall) []coalesce.Result[*Result] {
	out := make([]coalesce.Result[*Result], len(calls))
	type batch struct {
		req  routesRequest
		args []any
		idx  []int
	}
	var batches []*batch
	byKey := map[string]*batch{}
	for i, c := range calls {
		cands := c.op.Cands
		if cands == nil {
			cands = []Cand{}
		}
		ck, err := json.Marshal(cands)
		if err != nil {
			out[i].Err = err
			continue
		}
		key := c.op.Team + "\x00" + strconv.FormatInt(c.op.Ver, 10) + "\x00" + string(ck)
		b := byKey[key]
		if b == nil {
			b = &batch{req: routesRequest{Op: "routes", Team: c.op.Team, Ver: c.op.Ver, Cands: ck}}
			byKey[key] = b
			batches = append(batches, b)
		}
		o := c.op
		b.req.Items = append(b.req.Items, routeItem{Lead: o.Lead, Now: o.Now, Dec: o.Dec, Pref: o.Pref, Strict: o.Strict,
			Force: o.Force, Req: o.Req, TP: o.TP, Heat: o.Heat, Score: o.Score, Reasons: o.Reasons, Pol: o.Pol,
			FTW: o.FTW, TW: o.TW, TReq: o.TReq, Org: o.Org})
		b.args = append(b.args, c.profile, c.score)
		b.idx = append(b.idx, i)
	}
	done := make(chan struct{}, len(batches))
	for _, b := range batches {
		go func() {
			defer func() { done <- struct{}{} }()
			res, err := s.routeBatch(ctx, b.req, b.args)
			for j, i := range b.idx {
				if err != nil {
					out[i].Err = err
				} else {
					out[i].Val = res[j]
				}
			}
		}()
	}
	for range batches {
		<-done
	}
	return out
}

// routeBatch runs one "routes" call and gives each item the answer a
// "route" call would have: its own loads after it ran.
func (s *Store) routeBatch(ctx context.Context, req routesRequest, profilesAndScores []any) ([]*Result, error) {
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	args := append([]any{in}, profilesAndScores...)
	raw, err := s.shared.Eval(ctx, teamScript, []string{TeamPrefix(req.Team) + "cfgver"}, args...).Text()
	if err != nil {
		return nil, err
	}
	ans := &routesAnswer{}
	if err := json.Unmarshal([]byte(raw), ans); err != nil {
		return nil, fmt.Errorf("team script answer %q: %w", truncate(raw, 200), err)
	}
	out := make([]*Result, len(req.Items))
	if ans.St == "STALE" {
		for j := range out {
			out[j] = &Result{St: "STALE", Ver: ans.Ver}
		}
		return out, nil
	}
	if ans.St != "OK" || len(ans.Items) != len(req.Items) {
		return nil, fmt.Errorf("team script answered %q with %d of %d routes", ans.St, len(ans.Items), len(req.Items))
	}
	loads := ans.Loads
	if loads == nil {
		loads = map[string]int{}
	}
	for j, r := range ans.Items {
		switch r.St {
		case "ASSIGNED":
			loads[r.Rep]++
			r.Loads = maps.Clone(loads)
		case "QUEUED", "NOPREF":
			r.Loads = maps.Clone(loads)
		}
		out[j] = r
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Record is a lead's routing record.
type Record struct {
	Lead, Team, State, Rep, Dec, TP, Req, Pol, Last, Org string
	Seq                                                  int64
	Heat, Score, Touches, TouchesReq, SlaReassigns       int
	AssignedAt, AcceptedAt, FTD, FTA, TDue, QueuedAt     int64
	Profile, ScoreBytes                                  []byte
	Reasons                                              []string
	Excluded                                             []string
	FTW, TW                                              int64
}

// LeadTeam is the team a lead lives in ("" = never routed).
func (s *Store) LeadTeam(ctx context.Context, lead string) (string, error) {
	t, err := s.rdb.Get(ctx, ptrKey(lead)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return t, err
}

// ClaimLeadTeam sets the lead's team when it has none and returns the team
// it lives in (the one given, or the existing one).
func (s *Store) ClaimLeadTeam(ctx context.Context, lead, team string) (string, error) {
	var c *redis.StatusCmd
	if err := s.shared.Pipelined(ctx, func(p redis.Pipeliner) {
		c = p.SetArgs(ctx, ptrKey(lead), team, redis.SetArgs{Mode: "NX", Get: true})
	}); err != nil {
		return "", err
	}
	if errors.Is(c.Err(), redis.Nil) {
		return team, nil
	}
	return c.Val(), nil
}

// SetLeadTeam moves the lead's pointer.
func (s *Store) SetLeadTeam(ctx context.Context, lead, team string) error {
	return s.rdb.Set(ctx, ptrKey(lead), team, 0).Err()
}

// Lead reads a lead's record in a team (ErrNotFound when absent).
func (s *Store) Lead(ctx context.Context, team, lead string) (*Record, error) {
	recs, err := s.Leads(ctx, team, []string{lead})
	if err != nil {
		return nil, err
	}
	if recs[0] == nil {
		return nil, ErrNotFound
	}
	return recs[0], nil
}

// Leads reads the records of several leads of a team in one round trip (the
// team's keys share one hash tag, so one Cluster node), shared with the
// reads and team-script calls made at the same time (inbox reads of many
// reps come together). recs[i] is the record of leads[i], nil when absent.
func (s *Store) Leads(ctx context.Context, team string, leads []string) ([]*Record, error) {
	p := TeamPrefix(team)
	hs := make([]*redis.MapStringStringCmd, len(leads))
	exs := make([]*redis.StringSliceCmd, len(leads))
	if err := s.shared.Pipelined(ctx, func(pipe redis.Pipeliner) {
		for i, lead := range leads {
			hs[i] = pipe.HGetAll(ctx, p+"lead:"+lead)
			exs[i] = pipe.SMembers(ctx, p+"excl:"+lead)
		}
	}); err != nil {
		return nil, err
	}
	recs := make([]*Record, len(leads))
	for i, lead := range leads {
		m := hs[i].Val()
		if len(m) == 0 || m["st"] == "" {
			continue
		}
		i64 := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
		r := &Record{
			Lead: lead, Team: team, State: m["st"], Rep: m["rep"], Dec: m["dec"], TP: m["tp"], Req: m["req"], Pol: m["pol"], Last: m["last"], Org: m["org"],
			Seq: i64("seq"), Heat: int(i64("heat")), Score: int(i64("score")), Touches: int(i64("tch")), TouchesReq: int(i64("treq")),
			SlaReassigns: int(i64("rea")), AssignedAt: i64("at"), AcceptedAt: i64("acc"), FTD: i64("ftd"), FTA: i64("fta"), TDue: i64("tdue"),
			QueuedAt: i64("qat"), Profile: []byte(m["p"]), ScoreBytes: []byte(m["s"]), Excluded: exs[i].Val(), FTW: i64("ftw"), TW: i64("tw"),
		}
		if m["r"] != "" {
			_ = json.Unmarshal([]byte(m["r"]), &r.Reasons)
		}
		recs[i] = r
	}
	return recs, nil
}

// AssignmentStates reads the assignment fields of many lead records of a
// team (state, rep, sequence, policy, trace, first-touch and touch
// deadlines; no profile, score or exclusions) in one pipeline, in the order
// of leads, nil where a lead has no record.
func (s *Store) AssignmentStates(ctx context.Context, team string, leads []string) ([]*Record, error) {
	p := TeamPrefix(team)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(leads))
	for i, lead := range leads {
		cmds[i] = pipe.HMGet(ctx, p+"lead:"+lead, "st", "rep", "seq", "pol", "tp", "fta", "ftd", "treq", "tch", "tdue")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	recs := make([]*Record, len(leads))
	for i, lead := range leads {
		v := cmds[i].Val()
		str := func(k int) string { s, _ := v[k].(string); return s }
		i64 := func(k int) int64 { n, _ := strconv.ParseInt(str(k), 10, 64); return n }
		if len(v) != 10 || str(0) == "" {
			continue
		}
		recs[i] = &Record{Lead: lead, Team: team, State: str(0), Rep: str(1), Seq: i64(2), Pol: str(3), TP: str(4),
			FTA: i64(5), FTD: i64(6), TouchesReq: int(i64(7)), Touches: int(i64(8)), TDue: i64(9)}
	}
	return recs, nil
}

// MarkHandoff notes on the lead's record that a hand-off was scheduled, so
// a retried request does not schedule (and deliver) it again.
func (s *Store) MarkHandoff(ctx context.Context, team, lead, id string) error {
	return s.rdb.HSet(ctx, TeamPrefix(team)+"lead:"+lead, "ho:"+id, 1).Err()
}

// HandoffMarked reports whether MarkHandoff was called for id.
func (s *Store) HandoffMarked(ctx context.Context, team, lead, id string) (bool, error) {
	n, err := s.rdb.HExists(ctx, TeamPrefix(team)+"lead:"+lead, "ho:"+id).Result()
	return n, err
}

// RepLeads lists a rep's open leads (ordered by assignment time) after offset.
func (s *Store) RepLeads(ctx context.Context, team, rep string, offset, limit int64) ([]string, error) {
	return s.rdb.ZRange(ctx, TeamPrefix(team)+"rep:"+rep, offset, offset+limit-1).Result()
}

// RecentLeads lists, per rep of a team, the open leads assigned in
// [from, to) (ms), in one round trip.
func (s *Store) RecentLeads(ctx context.Context, team string, reps []string, from, to int64) (map[string][]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(reps))
	for i, rep := range reps {
		cmds[i] = pipe.ZRangeByScore(ctx, TeamPrefix(team)+"rep:"+rep, &redis.ZRangeBy{Min: strconv.FormatInt(from, 10), Max: "(" + strconv.FormatInt(to, 10)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := map[string][]string{}
	for i, rep := range reps {
		if ids := cmds[i].Val(); len(ids) > 0 {
			out[rep] = ids
		}
	}
	return out, nil
}

// QueueEntries lists a team's queue (hand-out order) or parked leads.
func (s *Store) QueueEntries(ctx context.Context, team string, parked bool, offset, limit int64) ([]redis.Z, int64, error) {
	key := TeamPrefix(team) + "queue"
	if parked {
		key = TeamPrefix(team) + "parked"
	}
	pipe := s.rdb.Pipeline()
	zs := pipe.ZRangeWithScores(ctx, key, offset, offset+limit-1)
	n := pipe.ZCard(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, err
	}
	return zs.Val(), n.Val(), nil
}

// QueueDepth is the number of queued leads of a team.
func (s *Store) QueueDepth(ctx context.Context, team string) (int64, error) {
	return s.rdb.ZCard(ctx, TeamPrefix(team)+"queue").Result()
}

// Loads returns the open leads per rep of a team.
func (s *Store) Loads(ctx context.Context, team string) (map[string]int, error) {
	m, err := s.rdb.HGetAll(ctx, TeamPrefix(team)+"load").Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		n, _ := strconv.Atoi(v)
		out[k] = n
	}
	return out, nil
}

// ---------------------------------------------------------------- decisions

// SaveDecisions stores decisions on pipe (the caller executes it).
func SaveDecisions(ctx context.Context, pipe redis.Pipeliner, ds ...*routingv1.RoutingDecision) error {
	for _, d := range ds {
		b, err := proto.Marshal(d)
		if err != nil {
			return err
		}
		pipe.Set(ctx, decisionKey(d.GetId()), b, 0)
		pipe.ZAdd(ctx, decisionsKey(d.GetLeadId()), redis.Z{Score: float64(d.GetDecidedAt().AsTime().UnixMilli()), Member: d.GetId()})
	}
	return nil
}

// Decision loads one decision.
func (s *Store) Decision(ctx context.Context, id string) (*routingv1.RoutingDecision, error) {
	b, err := s.rdb.Get(ctx, decisionKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d := &routingv1.RoutingDecision{}
	return d, proto.Unmarshal(b, d)
}

// Decisions lists a lead's decisions newest first from offset.
func (s *Store) Decisions(ctx context.Context, lead string, offset, limit int64) ([]*routingv1.RoutingDecision, int64, error) {
	pipe := s.rdb.Pipeline()
	ids := pipe.ZRevRange(ctx, decisionsKey(lead), offset, offset+limit-1)
	n := pipe.ZCard(ctx, decisionsKey(lead))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, 0, err
	}
	if len(ids.Val()) == 0 {
		return nil, n.Val(), nil
	}
	pipe = s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, 0, len(ids.Val()))
	for _, id := range ids.Val() {
		gets = append(gets, pipe.Get(ctx, decisionKey(id)))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, err
	}
	out := make([]*routingv1.RoutingDecision, 0, len(gets))
	for _, g := range gets {
		b, err := g.Bytes()
		if err != nil {
			continue
		}
		d := &routingv1.RoutingDecision{}
		if proto.Unmarshal(b, d) == nil {
			out = append(out, d)
		}
	}
	return out, n.Val(), nil
}

// ---------------------------------------------------------------- inbox

// InboxEntry is one raw inbox stream entry.
type InboxEntry struct {
	ID     string
	Kind   string
	Lead   string
	Dec    string
	At     time.Time
	Note   string
	Rep    string
	Fields map[string]string
}

// ReadInbox reads entries after cursor ("" = from the start), blocking up to
// block when there are none.
func (s *Store) ReadInbox(ctx context.Context, team, rep, after string, count int64, block time.Duration) ([]InboxEntry, error) {
	if after == "" {
		after = "0-0"
	}
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{TeamPrefix(team) + "inbox:" + rep, after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []InboxEntry
	for _, st := range res {
		for _, m := range st.Messages {
			e := InboxEntry{ID: m.ID, Fields: map[string]string{}}
			for k, v := range m.Values {
				sv, _ := v.(string)
				e.Fields[k] = sv
			}
			e.Kind, e.Lead, e.Dec, e.Note, e.Rep = e.Fields["k"], e.Fields["lead"], e.Fields["dec"], e.Fields["note"], e.Fields["rep"]
			if ms, err := strconv.ParseInt(e.Fields["at"], 10, 64); err == nil {
				e.At = time.UnixMilli(ms)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// AddInbox appends an item to a rep's inbox outside the team script (SLA
// notices to a team lead who may belong to another team).
func (s *Store) AddInbox(ctx context.Context, team, rep string, fields map[string]any) (string, error) {
	return s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: TeamPrefix(team) + "inbox:" + rep, MaxLen: 10000, Approx: true, Values: fields}).Result()
}

// ValidCursor reports whether c looks like a stream id.
func ValidCursor(c string) bool {
	if c == "" {
		return true
	}
	ms, seq, ok := strings.Cut(c, "-")
	if !ok {
		return false
	}
	_, e1 := strconv.ParseUint(ms, 10, 64)
	_, e2 := strconv.ParseUint(seq, 10, 64)
	return e1 == nil && e2 == nil
}
