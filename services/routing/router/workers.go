package router

import (
	"context"
	"time"
)

// Workers are the Router's background loops: the SLA timers, the status
// hand-offs to scoring and the sweep.
func (r *Router) Workers() []func(ctx context.Context) error {
	return []func(ctx context.Context) error{
		func(ctx context.Context) error { return r.sla.Run(ctx, r.handleSLA) },
		func(ctx context.Context) error { return r.handoff.Run(ctx, r.handleHandoff) },
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
