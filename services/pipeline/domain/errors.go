// Package domain holds the pipeline's rules: pipelines and stages, the deal
// state machine, closing rules, quotes, activities and the forecast. It is
// pure Go: no gRPC and no Redis. The store interface it needs is Store.
package domain

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; the gRPC face maps them to status codes with errors.Is.
var (
	// ErrNotFound: the pipeline, stage, deal, activity or quote does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a unique thing exists already (e.g. an open deal for the lead).
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the change is illegal in the current state.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrAborted: a concurrent change won; retry.
	ErrAborted = errors.New("aborted")
	// ErrResourceExhausted: a per-deal limit is reached.
	ErrResourceExhausted = errors.New("resource exhausted")
)

func notFound(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotFound}, a...)...)
}

func precondition(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFailedPrecondition}, a...)...)
}

// Violation is one invalid field of a request.
type Violation struct {
	Field       string
	Description string
}

// ValidationError lists every invalid field found by a domain rule; the face
// turns it into InvalidArgument with google.rpc.BadRequest.
type ValidationError struct {
	Violations []Violation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

// violations collects field violations.
type violations []Violation

func (vs *violations) add(field, format string, a ...any) {
	*vs = append(*vs, Violation{Field: field, Description: fmt.Sprintf(format, a...)})
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &ValidationError{Violations: vs}
}
