package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// Payload is implemented by every domain event body. EventType is the stable
// wire name stored in the event store; it never changes once events of that
// type exist.
type Payload interface {
	EventType() string
}

// Upcaster turns the JSON of one schema version into the JSON of the next.
type Upcaster func(old json.RawMessage) (json.RawMessage, error)

type definition struct {
	current   int
	typ       reflect.Type
	upcasters map[int]Upcaster // from version N to N+1
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*definition{}
)

// Register declares payload type T at schema version current. upcasters[i]
// converts version i+1 to i+2, so len(upcasters) must be current-1: every
// version ever written stays readable. Register panics on misuse because it
// runs from init functions, where misuse is a programming error.
func Register[T Payload](current int, upcasters ...Upcaster) {
	var zero T
	name := zero.EventType()
	if current < 1 || len(upcasters) != current-1 {
		panic(fmt.Sprintf("events: %s: version %d needs %d upcasters, got %d", name, current, current-1, len(upcasters)))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("events: duplicate registration of " + name)
	}
	d := &definition{current: current, typ: reflect.TypeOf(zero), upcasters: map[int]Upcaster{}}
	for i, u := range upcasters {
		d.upcasters[i+1] = u
	}
	registry[name] = d
}

// Registered lists every registered event type name.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	return out
}

// Encode returns the type name, current schema version and JSON body of p.
func Encode(p Payload) (typ string, version int, body []byte, err error) {
	typ = p.EventType()
	registryMu.RLock()
	d, ok := registry[typ]
	registryMu.RUnlock()
	if !ok {
		return "", 0, nil, fmt.Errorf("events: type %q is not registered", typ)
	}
	body, err = json.Marshal(p)
	return typ, d.current, body, err
}

// Decode returns e's payload as its registered Go type (a value, not a
// pointer), upcasting older schema versions first. Unknown types are an
// error so a consumer never silently ignores a fact it should understand.
func Decode(e Event) (Payload, error) {
	registryMu.RLock()
	d, ok := registry[e.Type]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("events: type %q is not registered", e.Type)
	}
	raw := e.Payload
	if e.SchemaVersion < 1 {
		return nil, fmt.Errorf("events: %s has no schema version", e.Type)
	}
	if e.SchemaVersion > d.current {
		return nil, fmt.Errorf("events: %s version %d is newer than this binary understands (%d)", e.Type, e.SchemaVersion, d.current)
	}
	for v := e.SchemaVersion; v < d.current; v++ {
		var err error
		if raw, err = d.upcasters[v](raw); err != nil {
			return nil, fmt.Errorf("events: upcast %s v%d: %w", e.Type, v, err)
		}
	}
	ptr := reflect.New(d.typ)
	if err := json.Unmarshal(raw, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("events: decode %s: %w", e.Type, err)
	}
	return ptr.Elem().Interface().(Payload), nil
}

// IsRegistered reports whether typ has a registered payload.
func IsRegistered(typ string) bool {
	registryMu.RLock()
	defer registryMu.RUnlock()
	_, ok := registry[typ]
	return ok
}
