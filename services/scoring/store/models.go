package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	json "github.com/segmentio/encoding/json"

	"github.com/leadflow/leadflow/services/platform/coalesce"
	"github.com/leadflow/leadflow/services/scoring/domain"
)

const (
	modelSeqKey       = "lf:scoring:{models}:seq"
	modelActiveKey    = "lf:scoring:{models}:active"
	modelVersionsKey  = "lf:scoring:{models}:versions"
	modelActivatedKey = "lf:scoring:{models}:activated"
)

func modelKey(v int32) string { return "lf:scoring:{models}:m:" + strconv.Itoa(int(v)) }

// CreateModel stores m as the next version (optionally activating it) and
// returns it with its version. On a fresh install the default model is
// installed first, so it is always version 1.
func (s *Store) CreateModel(ctx context.Context, m domain.Model, activate bool, now time.Time) (domain.Model, error) {
	if err := s.ensureDefault(ctx, now); err != nil {
		return domain.Model{}, err
	}
	return s.createModel(ctx, m, activate, false, now)
}

// createModel adds a version; onlyIfEmpty makes it the default-install step
// (nothing happens when any version exists).
func (s *Store) createModel(ctx context.Context, m domain.Model, activate, onlyIfEmpty bool, now time.Time) (domain.Model, error) {
	for range maxTxAttempts {
		var out domain.Model
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			seq, err := tx.Get(ctx, modelSeqKey).Int()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if onlyIfEmpty && seq > 0 {
				return nil
			}
			out = m
			out.Version = int32(seq + 1)
			out.CreatedAt = now.UTC()
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, modelSeqKey, out.Version, 0)
				p.Set(ctx, modelKey(out.Version), b, 0)
				p.ZAdd(ctx, modelVersionsKey, redis.Z{Score: float64(out.Version), Member: out.Version})
				if activate {
					p.Set(ctx, modelActiveKey, out.Version, 0)
					p.HSet(ctx, modelActivatedKey, strconv.Itoa(int(out.Version)), now.UTC().UnixMilli())
				}
				return nil
			})
			return err
		}, modelSeqKey)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return domain.Model{}, err
		}
		if out.Version == 0 {
			return out, nil
		}
		if activate {
			out.Active, out.ActivatedAt = true, now.UTC()
		}
		return out, nil
	}
	return domain.Model{}, domain.ErrConflict
}

// ensureDefault installs and activates the default model when no version
// exists (a fresh install). Cheap after the first success.
func (s *Store) ensureDefault(ctx context.Context, now time.Time) error {
	s.mu.RLock()
	ok := s.ensured
	s.mu.RUnlock()
	if ok {
		return nil
	}
	d := domain.DefaultModel()
	d.CreatedBy = "scoring (default install)"
	if _, err := s.createModel(ctx, d, true, true, now); err != nil {
		return err
	}
	s.mu.Lock()
	s.ensured = true
	s.mu.Unlock()
	return nil
}

// GetModel returns a version (0 = the active one) or domain.ErrNotFound.
func (s *Store) GetModel(ctx context.Context, v int32) (domain.Model, error) {
	if v == 0 {
		a, err := s.ActiveModel(ctx, time.Now())
		if err != nil {
			return a, err
		}
		return s.model(ctx, a.Version, a.Version)
	}
	if err := s.ensureDefault(ctx, time.Now()); err != nil {
		return domain.Model{}, err
	}
	active, err := s.activeVersion(ctx)
	if err != nil {
		return domain.Model{}, err
	}
	return s.model(ctx, v, active)
}

// activeVersion is the active model version (0 when none). Calls at the
// same time share one read, started after each of them was made.
func (s *Store) activeVersion(ctx context.Context) (int32, error) {
	return s.active.Do(ctx, struct{}{})
}

// readActiveVersion reads the active version once for a batch of callers.
func (s *Store) readActiveVersion(ctx context.Context, calls []struct{}) []coalesce.Result[int32] {
	var r coalesce.Result[int32]
	v, err := s.rdb.Get(ctx, modelActiveKey).Int()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		r.Err = err
	default:
		r.Val = int32(v)
	}
	out := make([]coalesce.Result[int32], len(calls))
	for i := range out {
		out[i] = r
	}
	return out
}

// model reads a version through the cache and marks it active or not.
func (s *Store) model(ctx context.Context, v, active int32) (domain.Model, error) {
	m, err := s.cached(ctx, v)
	if err != nil {
		return m, err
	}
	m.Active = v == active
	if ms, err := s.rdb.HGet(ctx, modelActivatedKey, strconv.Itoa(int(v))).Int64(); err == nil {
		m.ActivatedAt = time.UnixMilli(ms).UTC()
	}
	return m, nil
}

// cached reads an immutable version through the in-process cache.
func (s *Store) cached(ctx context.Context, v int32) (domain.Model, error) {
	s.mu.RLock()
	m, ok := s.models[v]
	s.mu.RUnlock()
	if !ok {
		b, err := s.rdb.Get(ctx, modelKey(v)).Bytes()
		if errors.Is(err, redis.Nil) {
			return domain.Model{}, fmt.Errorf("model version %d: %w", v, domain.ErrNotFound)
		}
		if err != nil {
			return domain.Model{}, err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return domain.Model{}, fmt.Errorf("decode model %d: %w", v, err)
		}
		s.mu.Lock()
		s.models[v] = m
		s.mu.Unlock()
	}
	return m, nil
}

// ActiveModel returns the active model (without ActivatedAt: the scoring
// path reads one key), installing the default on a fresh install.
func (s *Store) ActiveModel(ctx context.Context, now time.Time) (domain.Model, error) {
	if err := s.ensureDefault(ctx, now); err != nil {
		return domain.Model{}, err
	}
	v, err := s.activeVersion(ctx)
	if err != nil {
		return domain.Model{}, err
	}
	if v == 0 {
		// Redis lost its data (or was replaced) since the default was
		// installed: install it again.
		s.mu.Lock()
		s.ensured = false
		s.models = map[int32]domain.Model{}
		s.mu.Unlock()
		if err := s.ensureDefault(ctx, now); err != nil {
			return domain.Model{}, err
		}
		if v, err = s.activeVersion(ctx); err != nil {
			return domain.Model{}, err
		}
	}
	if v == 0 {
		return domain.Model{}, fmt.Errorf("no active model: %w", domain.ErrNotFound)
	}
	m, err := s.cached(ctx, v)
	m.Active = true
	return m, err
}

// ListModels returns versions newest first and whether more follow.
func (s *Store) ListModels(ctx context.Context, offset, limit int64) ([]domain.Model, bool, error) {
	if err := s.ensureDefault(ctx, time.Now()); err != nil {
		return nil, false, err
	}
	vs, err := s.rdb.ZRevRange(ctx, modelVersionsKey, offset, offset+limit).Result()
	if err != nil {
		return nil, false, err
	}
	more := int64(len(vs)) > limit
	if more {
		vs = vs[:limit]
	}
	active, err := s.activeVersion(ctx)
	if err != nil {
		return nil, false, err
	}
	out := make([]domain.Model, 0, len(vs))
	for _, v := range vs {
		n, _ := strconv.Atoi(v)
		m, err := s.model(ctx, int32(n), active)
		if err != nil {
			return nil, false, err
		}
		out = append(out, m)
	}
	return out, more, nil
}

// ActivateModel makes version v the active model.
func (s *Store) ActivateModel(ctx context.Context, v int32, now time.Time) (domain.Model, error) {
	if err := s.ensureDefault(ctx, now); err != nil {
		return domain.Model{}, err
	}
	if _, err := s.model(ctx, v, 0); err != nil {
		return domain.Model{}, err
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, modelActiveKey, v, 0)
		p.HSet(ctx, modelActivatedKey, strconv.Itoa(int(v)), now.UTC().UnixMilli())
		return nil
	})
	if err != nil {
		return domain.Model{}, err
	}
	return s.model(ctx, v, v)
}
