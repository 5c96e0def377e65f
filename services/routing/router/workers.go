package router

import (
	"context"
	"time"

	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/routing/domain"
)

// Workers are the Router's background loops: the SLA timers, the status
// hand-offs to scoring (the queue's workers, and the deliverer of the
// hand-offs this replica scheduled itself) and the sweep.
func (r *Router) Workers() []func(ctx context.Context) error {
	return []func(ctx context.Context) error{
		func(ctx context.Context) error { return r.sla.Run(ctx, r.handleSLA) },
		func(ctx context.Context) error { return r.handoff.Run(ctx, r.handleHandoff) },
		func(ctx context.Context) error { return r.handoff.RunDirect(ctx, jobs.PerJob(r.handleHandoff)) },
		r.sweep,
	}
}

// sweep re-reads the configuration and offers queued leads to reps whose
// working hours began or whose out-of-office ended.
func (r *Router) sweep(ctx context.Context) error {
	t := time.NewTicker(r.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := r.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "routing sweep", "error", err)
		}
	}
}

// SweepOnce does one sweep.
func (r *Router) SweepOnce(ctx context.Context) error {
	v, err := r.st.CurrentVersion(ctx)
	if err != nil {
		return err
	}
	if v == 0 {
		return nil
	}
	c := r.cfg.Load()
	if c == nil || c.Version < v {
		if c, err = r.reload(ctx); err != nil {
			return err
		}
	}
	if err := r.healTimers(ctx, c); err != nil {
		return err
	}
	for _, t := range c.TeamIDs {
		n, err := r.st.QueueDepth(ctx, t)
		if err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if _, err := r.Drain(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// healTimers re-schedules the SLA timers of recently assigned leads. A
// process that dies between the team script and scheduling the timers (or
// a Redis error there) would otherwise leave an assignment without its SLA.
// Scheduling is idempotent by job id, and only timers that are still in the
// future and still needed are scheduled, so a timer that fired or was
// cancelled by a touch is never re-created.
//
// Each sweep checks the assignments made in [from, to): to is a heal lag
// (a sweep interval) before now, by when the router that assigned a lead
// has scheduled its timers unless it failed; from is the previous sweep's
// to (HealWindow back after a start). So each assignment is checked once,
// not by every sweep of the window: after a burst of assignments the sweeps
// that followed re-read tens of thousands of records two or three times
// each, and stalled the calls made meanwhile. The records are read, and
// the queue asked which timers it lacks, healBatch leads per round trip.
func (r *Router) healTimers(ctx context.Context, c *domain.Config) error {
	if r.opts.HealWindow <= 0 {
		return nil
	}
	now := r.now()
	to := ms(now.Add(-min(r.opts.SweepInterval, r.opts.HealWindow/2)))
	from := ms(now.Add(-r.opts.HealWindow))
	if prev := r.healedTo.Load(); prev != 0 {
		from = max(from, prev)
	}
	if to <= from {
		return nil
	}
	for _, t := range c.TeamIDs {
		reps := make([]string, 0, len(c.Teams[t].Reps))
		for _, rp := range c.Teams[t].Reps {
			reps = append(reps, rp.ID)
		}
		recent, err := r.st.RecentLeads(ctx, t, reps, from, to)
		if err != nil {
			return err
		}
		var ids, holders []string
		for rep, repIDs := range recent {
			for _, id := range repIDs {
				ids, holders = append(ids, id), append(holders, rep)
			}
		}
		for start := 0; start < len(ids); start += healBatch {
			end := min(start+healBatch, len(ids))
			recs, err := r.st.AssignmentStates(ctx, t, ids[start:end])
			if err != nil {
				return err
			}
			e := &effects{}
			for i, rec := range recs {
				if rec == nil || (rec.State != "assigned" && rec.State != "accepted") || rec.Rep != holders[start+i] {
					continue
				}
				a := openDeadlines(rec, ms(now))
				r.timers(e, t, &a)
			}
			// Only the timers the queue does not hold are scheduled again (a
			// lost one is rare): one read instead of an EVAL per timer.
			if e.timers, err = r.sla.Missing(ctx, e.timers); err != nil {
				return err
			}
			if err := r.flush(ctx, e); err != nil {
				return err
			}
		}
	}
	r.healedTo.Store(to)
	return nil
}

// healBatch bounds the lead records one heal read asks for.
const healBatch = 500
