package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/sirgiving/ledger/ledger/eventstore"
	"github.com/sirgiving/ledger/projections"
)

// errorBody is the wire error of CONTRACT §3.
type errorBody struct {
	StatusCode int                     `json:"statusCode"`
	Code       string                  `json:"code"`
	Error      string                  `json:"error"`
	Message    string                  `json:"message"`
	RequestID  string                  `json:"requestId"`
	Details    []eventstore.FieldIssue `json:"details,omitempty"`
}

// statusOf is the one place domain error kinds become HTTP status codes.
func statusOf(err error) (int, *eventstore.Error) {
	switch {
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, errMethodNotAllowed
	case errors.Is(err, projections.ErrNotCaughtUp):
		return http.StatusServiceUnavailable, &eventstore.Error{Kind: eventstore.KindUnavailable, Code: "READ_MODEL_LAGGING",
			Message: "the read model has not caught up with your last write yet; retry shortly"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, &eventstore.Error{Kind: eventstore.KindUnavailable, Code: "TIMEOUT", Message: "the request did not complete in time"}
	}
	e := eventstore.AsError(err)
	if e.Kind == eventstore.KindInternal && databaseDown(err) {
		return http.StatusServiceUnavailable, errDatabaseUnavailable
	}
	switch e.Kind {
	case eventstore.KindInvalid:
		return http.StatusBadRequest, e
	case eventstore.KindUnauthorized:
		return http.StatusUnauthorized, e
	case eventstore.KindInsufficient:
		return http.StatusPaymentRequired, e
	case eventstore.KindForbidden:
		return http.StatusForbidden, e
	case eventstore.KindNotFound:
		return http.StatusNotFound, e
	case eventstore.KindConflict:
		return http.StatusConflict, e
	case eventstore.KindUnprocessable:
		return http.StatusUnprocessableEntity, e
	case eventstore.KindRateLimited:
		return http.StatusTooManyRequests, e
	case eventstore.KindTooLarge:
		return http.StatusRequestEntityTooLarge, e
	case eventstore.KindNotImplemented:
		return http.StatusNotImplemented, e
	case eventstore.KindUnavailable:
		return http.StatusServiceUnavailable, e
	default:
		return http.StatusInternalServerError, e
	}
}

// writeError answers with the contract's error body. Internal errors are
// logged with the request id and never shown to the caller.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, e := statusOf(err)
	noteCode(r.Context(), e.Code)
	msg := e.Message
	if status == http.StatusInternalServerError {
		loggerFrom(r.Context()).Error("request failed", "err", err)
		msg = "internal error; quote the requestId when contacting support"
	}
	writeJSON(w, status, errorBody{
		StatusCode: status, Code: e.Code, Error: http.StatusText(status), Message: msg,
		RequestID: requestIDFrom(r.Context()), Details: e.Details,
	})
}
