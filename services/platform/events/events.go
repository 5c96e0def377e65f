// Package events publishes the lifecycle stream: protobuf LeadEvents on one
// Redis Stream that reporting reads through a consumer group.
package events

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/leadflow/leadflow/gen/go/leadflow/events/v1"
	"github.com/leadflow/leadflow/services/platform/identity"
	"github.com/leadflow/leadflow/services/platform/leadtrace"
)

// StreamKey is the lifecycle stream. Its own hash tag keeps it on one Cluster
// slot with its dead-letter stream.
const StreamKey = "lf:{events}:stream"

// DeadLetterKey holds entries reporting could not process.
const DeadLetterKey = "lf:{events}:dead"

// Field is the stream entry field that holds the encoded LeadEvent.
const Field = "e"

// Publisher appends LeadEvents to the stream.
type Publisher struct {
	rdb      redis.UniversalClient
	producer string
}

// NewPublisher returns a publisher that stamps events with producer.
func NewPublisher(rdb redis.UniversalClient, producer string) *Publisher {
	return &Publisher{rdb: rdb, producer: producer}
}

// Prepare fills what the caller left empty: id (UUIDv7), occurred_at (now),
// producer, trace id and traceparent of ctx's span, and the caller identity.
func (p *Publisher) Prepare(ctx context.Context, ev *eventsv1.LeadEvent) error {
	if ev.GetId() == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		ev.Id = id.String()
	}
	if ev.GetOccurredAt() == nil {
		ev.OccurredAt = timestamppb.New(time.Now())
	}
	if ev.GetProducer() == "" {
		ev.Producer = p.producer
	}
	if ev.GetTraceparent() == "" {
		ev.Traceparent = leadtrace.Traceparent(ctx)
	}
	if ev.GetTraceId() == "" {
		ev.TraceId = leadtrace.TraceID(ev.GetTraceparent())
	}
	if ev.GetActor() == "" {
		ev.Actor = identity.From(ctx)
	}
	return nil
}

// Publish appends ev to the stream after Prepare. Delivery to reporting is
// at-least-once; reporting de-duplicates by ev.Id, so a caller may publish the
// same event again after an error.
func (p *Publisher) Publish(ctx context.Context, ev *eventsv1.LeadEvent) error {
	if err := p.Prepare(ctx, ev); err != nil {
		return err
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	return p.rdb.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey, Values: []any{Field, b}}).Err()
}

// AddToPipe queues the XADD of a prepared, encoded event on a pipeline or
// MULTI, so a service can publish in the same round trip (or transaction,
// where Cluster slots allow) as its state change.
func AddToPipe(pipe redis.Pipeliner, ctx context.Context, ev *eventsv1.LeadEvent) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey, Values: []any{Field, b}})
	return nil
}

// Decode reads the LeadEvent of a stream entry.
func Decode(values map[string]any) (*eventsv1.LeadEvent, error) {
	raw, ok := values[Field]
	if !ok {
		return nil, fmt.Errorf("stream entry has no %q field", Field)
	}
	var b []byte
	switch v := raw.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return nil, fmt.Errorf("stream entry field %q is %T", Field, raw)
	}
	ev := &eventsv1.LeadEvent{}
	if err := proto.Unmarshal(b, ev); err != nil {
		return nil, fmt.Errorf("decode LeadEvent: %w", err)
	}
	if ev.GetId() == "" || ev.GetLeadId() == "" {
		return nil, fmt.Errorf("LeadEvent without id or lead_id")
	}
	return ev, nil
}
