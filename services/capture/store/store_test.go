package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	capturev1 "github.com/leadflow/leadflow/gen/go/leadflow/capture/v1"
	leadv1 "github.com/leadflow/leadflow/gen/go/leadflow/lead/v1"
	"github.com/leadflow/leadflow/services/capture/domain"
	"github.com/leadflow/leadflow/services/capture/store"
	"github.com/leadflow/leadflow/services/platform/jobs"
	"github.com/leadflow/leadflow/services/platform/platformtest"
)

func newStore(t *testing.T) (*store.Redis, *redis.Client) {
	c := platformtest.StartRedis(t).Client()
	s, _, _ := newStoreQueue(t, c)
	return s, c
}

func newStoreQueue(t *testing.T, c redis.UniversalClient) (*store.Redis, *jobs.Queue, redis.UniversalClient) {
	q := jobs.New(c, "test-handoff", jobs.Options{})
	return store.New(c, q), q, c
}

// A lead is written with its hand-off: after Create, the job is in the
// queue with its payload, on one Redis and on a Cluster (where the job's
// slot gets its own transaction, after the lead's).
func TestCreateSchedulesTheHandoffWithTheLead(t *testing.T) {
	for name, c := range map[string]func() redis.UniversalClient{
		"single":  func() redis.UniversalClient { return platformtest.StartRedis(t).Client() },
		"cluster": func() redis.UniversalClient { return platformtest.StartRedisCluster(t).Client() },
	} {
		t.Run(name, func(t *testing.T) {
			if name == "cluster" && testing.Short() {
				t.Skip("cluster: not with -short")
			}
			s, q, _ := newStoreQueue(t, c())
			ctx := context.Background()
			sl := &domain.StoredLead{Lead: &leadv1.Lead{Id: "L9"}, Revision: 1}
			h := domain.Handoff{ID: "upsert:L9:1", LeadID: "L9", Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Payload: []byte("profile")}
			if err := s.Create(ctx, sl, domain.Writes{LeadID: "L9", Handoffs: []domain.Handoff{h}}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "L9"); err != nil {
				t.Fatal(err)
			}
			var got []jobs.Job
			if _, err := q.ProcessDue(ctx, func(_ context.Context, j jobs.Job) error { got = append(got, j); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != h.ID || string(got[0].Payload) != "profile" || got[0].LeadID != "L9" || got[0].Traceparent != h.Traceparent {
				t.Fatalf("hand-offs after Create = %+v, want the one written with the lead", got)
			}
		})
	}
}

// Concurrent read-modify-writes of one lead never lose an update.
func TestUpdateIsAtomicUnderContention(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	sl := &domain.StoredLead{Lead: &leadv1.Lead{Id: "L1"}, Revision: 1}
	if err := s.Create(ctx, sl, domain.Writes{}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Update(ctx, "L1", func(sl *domain.StoredLead) error {
				sl.Revision++
				sl.Lead.SubmissionCount++
				return nil
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	// ErrConflict means every attempt lost its race and nothing was
	// written, so the stored lead must count exactly the calls answered OK
	// (revision and count move together, so comparing them with each
	// other would also hold after a lost update).
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, domain.ErrConflict):
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, "L1")
	if err != nil {
		t.Fatal(err)
	}
	if ok == 0 || got.Revision != int64(1+ok) || int(got.Lead.SubmissionCount) != ok {
		t.Fatalf("%d updates answered OK, stored revision %d, count %d: an update was lost", ok, got.Revision, got.Lead.SubmissionCount)
	}
	if _, err := s.Update(ctx, "nope", func(*domain.StoredLead) error { return nil }); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("missing lead: %v", err)
	}
}

func TestClaimReleaseOnlyOwnAndMakePermanent(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	id := domain.NewIdentity("email", "a@b.io")
	owners, org, created, err := s.Claim(ctx, "L1", []domain.Identity{id}, time.Minute, &leadv1.Organisation{Id: "O1", Domain: "b.io"})
	if err != nil || owners[0] != "" || !created || org.GetId() != "O1" {
		t.Fatalf("first claim: %v %v %v %v", owners, org, created, err)
	}
	owners, org, created, err = s.Claim(ctx, "L2", []domain.Identity{id}, time.Minute, &leadv1.Organisation{Id: "O2", Domain: "b.io"})
	if err != nil || owners[0] != "L1" || created || org.GetId() != "O1" {
		t.Fatalf("second claim: %v %v %v %v", owners, org, created, err)
	}
	if err := s.Release(ctx, "L2", []domain.Identity{id}); err != nil {
		t.Fatal(err)
	}
	if o, _ := s.Owner(ctx, id); o != "L1" {
		t.Fatalf("L2 released L1's claim: owner %q", o)
	}
	if ttl := c.PTTL(ctx, store.IdentityKey(id)).Val(); ttl <= 0 {
		t.Fatalf("claim has no TTL: %v", ttl)
	}
	if err := s.Create(ctx, &domain.StoredLead{Lead: &leadv1.Lead{Id: "L1"}, Identities: []domain.Identity{id}}, domain.Writes{}); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, store.IdentityKey(id)).Val(); ttl != -1 {
		t.Fatalf("claim not permanent after the lead was written: %v", ttl)
	}
}

// A signal racing the stitch either lands in the list the stitch reads or
// sees the mapping: never neither.
// LookupClaim claims the free identities for the new id, names the owner of
// the taken ones, reads the idempotency pointer and reads (never creates)
// the organisation, in one round trip.
func TestLookupClaimClaimsFreeIdentitiesAndCreatesNoOrganisation(t *testing.T) {
	s, c := newStore(t)
	ctx := context.Background()
	email, phone := domain.NewIdentity("email", "a@b.io"), domain.NewIdentity("phone", "+4681234")
	if _, _, _, err := s.Claim(ctx, "L1", []domain.Identity{email}, time.Minute, &leadv1.Organisation{Id: "O1", Domain: "b.io"}); err != nil {
		t.Fatal(err)
	}
	rec, owners, org, err := s.LookupClaim(ctx, "", "L2", []domain.Identity{email, phone}, time.Minute, "b.io")
	if err != nil || rec != nil || !slices.Equal(owners, []string{"L1", ""}) || org.GetId() != "O1" {
		t.Fatalf("LookupClaim: %v %v %v %v", rec, owners, org, err)
	}
	if o, _ := s.Owner(ctx, phone); o != "L2" {
		t.Fatalf("free phone not claimed for L2: owner %q", o)
	}
	if ttl := c.PTTL(ctx, store.IdentityKey(phone)).Val(); ttl <= 0 {
		t.Fatalf("claim has no TTL: %v", ttl)
	}
	_, _, org, err = s.LookupClaim(ctx, "", "L3", []domain.Identity{domain.NewIdentity("email", "x@new.io")}, time.Minute, "new.io")
	if err != nil || org != nil {
		t.Fatalf("unknown domain: org %v, %v", org, err)
	}
	if n := c.Exists(ctx, store.OrgKey("new.io")).Val(); n != 0 {
		t.Fatal("LookupClaim created an organisation")
	}
	if err := s.Apply(ctx, domain.Writes{IdemKeyHash: "k1", Idem: &capturev1.IdempotencyRecord{HandoffJobId: "j1"}, IdemTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	rec, _, _, err = s.LookupClaim(ctx, "k1", "L4", nil, time.Minute, "")
	if err != nil || rec.GetHandoffJobId() != "j1" {
		t.Fatalf("idempotency pointer: %v %v", rec, err)
	}
}

func TestVisitorSignalsAreNeverLeftBehind(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		vh := domain.Hash(fmt.Sprint("visitor-", round))
		var wg sync.WaitGroup
		var direct, stitched int
		var mu sync.Mutex
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lead, err := s.AddVisitorSignal(ctx, vh, []byte(fmt.Sprint("sig", i)), time.Hour)
				if err != nil {
					t.Error(err)
				}
				if lead != "" {
					mu.Lock()
					direct++
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.StitchVisitor(ctx, vh, "L1", time.Hour)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			stitched = len(got)
			mu.Unlock()
		}()
		wg.Wait()
		if direct+stitched != 10 {
			t.Fatalf("round %d: %d direct + %d stitched != 10", round, direct, stitched)
		}
	}
}

func TestLeadsOfDomainPagesInIDOrder(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, id := range []string{"c", "a", "d", "b"} {
		if err := s.Apply(ctx, domain.Writes{OrgDomain: "x.io", LeadID: id}); err != nil {
			t.Fatal(err)
		}
	}
	p1, _ := s.LeadsOfDomain(ctx, "x.io", "", 3)
	p2, _ := s.LeadsOfDomain(ctx, "x.io", p1[len(p1)-1], 3)
	if fmt.Sprint(p1, p2) != "[a b c] [d]" {
		t.Fatalf("pages %v %v", p1, p2)
	}
}
