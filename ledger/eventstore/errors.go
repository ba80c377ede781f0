package eventstore

import (
	"errors"
	"fmt"
)

// Kind classifies a domain error so that transports can map it to their own
// status codes without the domain knowing about them.
type Kind int

// Error kinds. Each transport maps every kind exactly once.
const (
	KindInternal       Kind = iota // a bug or an unavailable dependency
	KindInvalid                    // the request is malformed or breaks a rule
	KindNotFound                   // the thing does not exist for this tenant
	KindConflict                   // the state forbids it (already done, version moved)
	KindUnauthorized               // credentials missing or wrong
	KindForbidden                  // credentials right, permission missing
	KindInsufficient               // not enough tokens or budget
	KindUnprocessable              // well-formed but semantically refused
	KindRateLimited                // too many requests
	KindUnavailable                // a dependency is down; retry later
	KindNotImplemented             // the capability is not built
	KindTooLarge                   // the request is larger than the transport accepts
)

// FieldIssue names one invalid input field.
type FieldIssue struct {
	Field string `json:"field"`
	Issue string `json:"issue"`
}

// Error is the domain's error type: a kind, a stable machine-readable code
// (the `code` of the wire error body), a human message, and for validation
// failures the offending fields.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	Details []FieldIssue
	Err     error
}

// Error renders the code and message (and the cause, if any) for logs;
// callers that answer a client read Kind, Code and Message instead.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause, so errors.Is and errors.As see through the
// domain error to the failure underneath it.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error of the given kind and code.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid builds a validation error naming the fields at fault.
func Invalid(message string, details ...FieldIssue) *Error {
	return &Error{Kind: KindInvalid, Code: "VALIDATION_ERROR", Message: message, Details: details}
}

// AsError returns err as an *Error, wrapping unknown errors as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindInternal, Code: "INTERNAL", Message: "internal error", Err: err}
}

// ErrConcurrency is returned by Append when the stream is not at the
// expected version. The caller may re-read and retry.
var ErrConcurrency = &Error{Kind: KindConflict, Code: "CONCURRENCY_CONFLICT", Message: "the stream has moved on since it was read; retry"}

// ErrStoreClosed is returned for commands submitted after Close.
var ErrStoreClosed = &Error{Kind: KindUnavailable, Code: "STORE_CLOSED", Message: "the event store is shutting down"}
