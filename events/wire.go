package events

import (
	"encoding/binary"
	"errors"
	"time"
)

// binaryVersion leads every binary envelope, so the layout can evolve.
const binaryVersion = 1

// MarshalBinary encodes e compactly for the broker: every stored field,
// length-prefixed, with the payload and metadata bytes as they are. A
// consumer decodes the envelope without parsing (or validating) any JSON;
// the payload is decoded later, and only by the read models that use it.
func (e *Event) MarshalBinary() ([]byte, error) {
	return e.AppendBinary(make([]byte, 0, e.BinarySize()))
}

// AppendBinary appends MarshalBinary's encoding of e to b (exactly
// BinarySize bytes), so a run of envelopes is written straight into one
// message body. It never fails; the error is encoding.BinaryAppender's.
func (e *Event) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, binaryVersion)
	b = binary.AppendVarint(b, e.Position)
	b = appendBytes(b, []byte(e.StreamID))
	b = binary.AppendVarint(b, e.StreamVersion)
	b = append(b, e.ID[:]...)
	b = appendBytes(b, []byte(e.Type))
	b = binary.AppendVarint(b, int64(e.SchemaVersion))
	b = appendBytes(b, []byte(e.PartnerID))
	b = appendBytes(b, []byte(e.Environment))
	b = appendBytes(b, e.Payload)
	b = appendBytes(b, e.Metadata)
	b = binary.AppendVarint(b, e.RecordedAt.UnixMicro())
	b = appendBytes(b, e.PrevHash)
	b = appendBytes(b, e.Hash)
	return b, nil
}

// BinarySize is the length of e's binary envelope.
func (e *Event) BinarySize() int {
	return 1 + varintLen(e.Position) + bytesLen(len(e.StreamID)) + varintLen(e.StreamVersion) + len(e.ID) +
		bytesLen(len(e.Type)) + varintLen(int64(e.SchemaVersion)) + bytesLen(len(e.PartnerID)) +
		bytesLen(len(e.Environment)) + bytesLen(len(e.Payload)) + bytesLen(len(e.Metadata)) +
		varintLen(e.RecordedAt.UnixMicro()) + bytesLen(len(e.PrevHash)) + bytesLen(len(e.Hash))
}

// uvarintLen is how many bytes binary.AppendUvarint writes for n.
func uvarintLen(n uint64) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// varintLen is how many bytes binary.AppendVarint writes for n (zig-zag).
func varintLen(n int64) int {
	return uvarintLen(uint64(n<<1) ^ uint64(n>>63))
}

// bytesLen is the length of appendBytes' output for n bytes.
func bytesLen(n int) int { return uvarintLen(uint64(n)) + n }

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// errBinary is every malformed binary envelope.
var errBinary = errors.New("events: malformed binary envelope")

// UnmarshalBinary decodes what MarshalBinary encoded. The byte slices of e
// (payload, metadata, hashes) are copies: b may be reused by its owner.
func (e *Event) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != binaryVersion {
		return errBinary
	}
	r := binReader{b: b[1:]}
	e.Position = r.varint()
	e.StreamID = string(r.bytes())
	e.StreamVersion = r.varint()
	if len(r.b) < len(e.ID) {
		return errBinary
	}
	copy(e.ID[:], r.b)
	r.b = r.b[len(e.ID):]
	e.Type = string(r.bytes())
	e.SchemaVersion = int(r.varint())
	e.PartnerID = string(r.bytes())
	e.Environment = string(r.bytes())
	e.Payload = r.copied()
	e.Metadata = r.copied()
	e.RecordedAt = time.UnixMicro(r.varint()).UTC()
	e.PrevHash = r.copied()
	e.Hash = r.copied()
	if r.err || len(r.b) != 0 {
		return errBinary
	}
	return nil
}

// binReader reads fields in order; any short read sets err and yields zero
// values, checked once at the end.
type binReader struct {
	b   []byte
	err bool
}

func (r *binReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *binReader) bytes() []byte {
	l, n := binary.Uvarint(r.b)
	if n <= 0 || uint64(len(r.b)-n) < l {
		r.err, r.b = true, nil
		return nil
	}
	v := r.b[n : n+int(l)]
	r.b = r.b[n+int(l):]
	return v
}

func (r *binReader) copied() []byte {
	v := r.bytes()
	if v == nil {
		return nil
	}
	return append([]byte(nil), v...)
}
