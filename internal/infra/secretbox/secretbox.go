// Package secretbox encrypts small secrets at rest with AES-256-GCM under
// the service master key. Each sealed value is bound to a context string
// (such as the owning record's id) so that a ciphertext copied onto another
// record does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// ErrOpen is returned when a sealed value does not decrypt under the key
// and context given: wrong key, wrong context, or tampered bytes.
var ErrOpen = errors.New("secretbox: cannot open sealed value")

func aead(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, errors.New("secretbox: key must be 32 bytes")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Seal encrypts plaintext under key, binding it to context. The result is
// nonce || ciphertext || tag.
func Seal(key []byte, context string, plaintext []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plaintext, []byte(context)), nil
}

// Open decrypts a value produced by Seal with the same key and context.
func Open(key []byte, context string, sealed []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, ErrOpen
	}
	n := g.NonceSize()
	out, err := g.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
