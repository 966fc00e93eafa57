package pdfdoc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/rc4"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// The standard security handler (ISO 32000-1, 7.6.3; ISO 32000-2, 7.6.4),
// only as far as opening a file with the empty user password needs: files
// that have only an owner password open, their parts written unencrypted;
// files that need a user password fail with ErrEncrypted. pdfcpu implements
// the same algorithms but keeps them unexported, behind its whole-file
// reader.

// cryptMethod is how one class of data (strings or streams) is encrypted.
type cryptMethod int

const (
	cryptNone cryptMethod = iota // Identity: not encrypted
	cryptRC4
	cryptAESV2 // AES-128, per-object keys
	cryptAESV3 // AES-256, the file key itself
)

type decrypter struct {
	key         []byte
	strings     cryptMethod
	streams     cryptMethod
	encryptMeta bool // /EncryptMetadata: false leaves XMP metadata streams in the clear
	encryptObj  int  // the encryption dictionary's object number (its strings are not encrypted); 0 if direct
}

var passwordPad = []byte{
	0x28, 0xBF, 0x4E, 0x5E, 0x4E, 0x75, 0x8A, 0x41, 0x64, 0x00, 0x4E, 0x56, 0xFF, 0xFA, 0x01, 0x08,
	0x2E, 0x2E, 0x00, 0xB6, 0xD0, 0x68, 0x3E, 0x80, 0x2F, 0x0C, 0xA9, 0xFE, 0x64, 0x53, 0x69, 0x7A,
}

// stringBytes returns the bytes a string object stands for.
func stringBytes(o types.Object) ([]byte, bool) {
	switch s := o.(type) {
	case types.StringLiteral:
		b, err := types.Unescape(string(s))
		return b, err == nil
	case types.HexLiteral:
		return hexBytes(string(s))
	}
	return nil, false
}

func hexBytes(s string) ([]byte, bool) {
	clean := make([]byte, 0, len(s)+1)
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			clean = append(clean, s[i])
		}
	}
	if len(clean)%2 == 1 {
		clean = append(clean, '0')
	}
	b, err := hex.DecodeString(string(clean))
	return b, err == nil
}

// newDecrypter sets up decryption for the encryption dictionary enc and the
// first element of the trailer's /ID, or fails with ErrEncrypted when the
// empty user password does not open the file.
func newDecrypter(enc types.Dict, id []byte) (*decrypter, error) {
	if f := enc.NameEntry("Filter"); f == nil || *f != "Standard" {
		return nil, fmt.Errorf("%w: security handler %v is not the standard one", ErrEncrypted, enc["Filter"])
	}
	v := intOf(enc["V"], 0)
	r := intOf(enc["R"], 0)
	o, _ := stringBytes(enc["O"])
	u, _ := stringBytes(enc["U"])
	p := intOf(enc["P"], 0)
	d := &decrypter{encryptMeta: true}
	if b, ok := enc["EncryptMetadata"].(types.Boolean); ok {
		d.encryptMeta = bool(b)
	}
	keyLen := intOf(enc["Length"], 40) / 8
	switch v {
	case 1:
		d.strings, d.streams, keyLen = cryptRC4, cryptRC4, 5
	case 2:
		d.strings, d.streams = cryptRC4, cryptRC4
	case 4, 5:
		var err error
		var l1, l2 int
		if d.streams, l1, err = cryptFilter(enc, "StmF"); err != nil {
			return nil, err
		}
		if d.strings, l2, err = cryptFilter(enc, "StrF"); err != nil {
			return nil, err
		}
		if l := max(l1, l2); l > 0 && v == 4 {
			keyLen = l
		}
	default:
		return nil, fmt.Errorf("%w: unsupported /V %d", ErrEncrypted, v)
	}
	if keyLen < 5 || keyLen > 16 {
		keyLen = 16
	}

	switch r {
	case 2, 3, 4:
		if len(o) < 32 || len(u) < 32 {
			return nil, fmt.Errorf("%w: /O or /U too short", ErrEncrypted)
		}
		if r == 2 {
			keyLen = 5
		}
		// A /Length that is missing or wrong (qpdf's tests have one
		// spelled /Wength) is 40 bits by the standard and 128 by qpdf's
		// guess: the key that opens the file with the empty password
		// says which.
		lens := []int{keyLen}
		if l := intOf(enc["Length"], -1); (l%8 != 0 || l < 40 || l > 128) && v >= 2 && r >= 3 && keyLen != 16 {
			lens = append(lens, 16)
		}
		for _, l := range lens {
			if key := fileKeyR4(o[:32], int32(p), id, r, l, d.encryptMeta); userPasswordOK(key, u, id, r) {
				d.key = key
				break
			}
		}
		if d.key == nil {
			return nil, fmt.Errorf("%w: the empty user password does not open it", ErrEncrypted)
		}
	case 5, 6:
		ue, _ := stringBytes(enc["UE"])
		if len(u) < 48 || len(ue) < 32 {
			return nil, fmt.Errorf("%w: /U or /UE too short", ErrEncrypted)
		}
		hash := func(salt []byte) []byte {
			if r == 5 {
				h := sha256.Sum256(salt)
				return h[:]
			}
			return hashR6(nil, salt[:8])
		}
		// The empty password: SHA-256 of the salt alone (R5), or
		// Algorithm 2.B of the salt (R6).
		if !bytes.Equal(hash(u[32:40]), u[:32]) {
			return nil, fmt.Errorf("%w: the empty user password does not open it", ErrEncrypted)
		}
		ik := hash(u[40:48])
		block, err := aes.NewCipher(ik)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEncrypted, err)
		}
		key := make([]byte, 32)
		cipher.NewCBCDecrypter(block, make([]byte, 16)).CryptBlocks(key, ue[:32])
		d.key = key
	default:
		return nil, fmt.Errorf("%w: unsupported /R %d", ErrEncrypted, r)
	}
	return d, nil
}

// cryptFilter returns the method of the crypt filter that enc's key names
// (/StmF or /StrF), and its key length in bytes when it says.
func cryptFilter(enc types.Dict, key string) (cryptMethod, int, error) {
	name := "Identity"
	if n := enc.NameEntry(key); n != nil {
		name = *n
	}
	if name == "Identity" {
		return cryptNone, 0, nil
	}
	cfs, _ := enc["CF"].(types.Dict)
	cf, _ := cfs[name].(types.Dict)
	if cf == nil {
		return 0, 0, fmt.Errorf("%w: crypt filter %s not defined", ErrEncrypted, name)
	}
	l := intOf(cf["Length"], 0)
	if l > 32 { // some writers give bits
		l /= 8
	}
	cfm := "None"
	if n := cf.NameEntry("CFM"); n != nil {
		cfm = *n
	}
	switch cfm {
	case "None":
		return cryptNone, l, nil
	case "V2":
		return cryptRC4, l, nil
	case "AESV2":
		return cryptAESV2, 16, nil
	case "AESV3":
		return cryptAESV3, 32, nil
	}
	return 0, 0, fmt.Errorf("%w: crypt filter method %s", ErrEncrypted, cfm)
}

// fileKeyR4 is Algorithm 2 with the empty password.
func fileKeyR4(o []byte, p int32, id []byte, r, n int, encryptMeta bool) []byte {
	h := md5.New()
	h.Write(passwordPad)
	h.Write(o)
	var pb [4]byte
	binary.LittleEndian.PutUint32(pb[:], uint32(p))
	h.Write(pb[:])
	h.Write(id)
	if r >= 4 && !encryptMeta {
		h.Write([]byte{0xff, 0xff, 0xff, 0xff})
	}
	key := h.Sum(nil)
	if r >= 3 {
		for range 50 {
			s := md5.Sum(key[:n])
			key = s[:]
		}
	}
	return key[:n]
}

// userPasswordOK is Algorithms 4 and 5: does key reproduce /U?
func userPasswordOK(key, u, id []byte, r int) bool {
	if r == 2 {
		c, _ := rc4.NewCipher(key)
		out := make([]byte, 32)
		c.XORKeyStream(out, passwordPad)
		return bytes.Equal(out, u[:32])
	}
	h := md5.New()
	h.Write(passwordPad)
	h.Write(id)
	out := h.Sum(nil)
	k := make([]byte, len(key))
	for i := range 20 {
		for j := range key {
			k[j] = key[j] ^ byte(i)
		}
		c, _ := rc4.NewCipher(k)
		c.XORKeyStream(out, out)
	}
	return bytes.Equal(out[:16], u[:16])
}

// hashR6 is Algorithm 2.B (ISO 32000-2, 7.6.4.3.4) for password pw, an
// 8-byte salt and no user key data (what validating a user password needs).
func hashR6(pw, salt []byte) []byte {
	first := sha256.Sum256(append(append([]byte{}, pw...), salt...))
	k := first[:]
	three := big.NewInt(3)
	var e []byte
	for round := 0; round < 64 || int(e[len(e)-1]) > round-32; round++ {
		seq := append(append([]byte{}, pw...), k...)
		k1 := bytes.Repeat(seq, 64)
		block, _ := aes.NewCipher(k[:16]) // 16 bytes: cannot fail
		e = make([]byte, len(k1))
		cipher.NewCBCEncrypter(block, k[16:32]).CryptBlocks(e, k1)
		switch new(big.Int).Mod(new(big.Int).SetBytes(e[:16]), three).Int64() {
		case 0:
			s := sha256.Sum256(e)
			k = s[:]
		case 1:
			s := sha512.Sum384(e)
			k = s[:]
		default:
			s := sha512.Sum512(e)
			k = s[:]
		}
	}
	return k[:32]
}

// objectKey is Algorithm 1: the key for the strings and streams of object
// num, gen.
func (d *decrypter) objectKey(m cryptMethod, num, gen int) []byte {
	if m == cryptAESV3 {
		return d.key
	}
	h := md5.New()
	h.Write(d.key)
	h.Write([]byte{byte(num), byte(num >> 8), byte(num >> 16), byte(gen), byte(gen >> 8)})
	if m == cryptAESV2 {
		h.Write([]byte("sAlT"))
	}
	return h.Sum(nil)[:min(len(d.key)+5, 16)]
}

// decryptBytes decrypts one string's bytes (in memory: strings are small).
func (d *decrypter) decryptBytes(m cryptMethod, num, gen int, b []byte) ([]byte, error) {
	key := d.objectKey(m, num, gen)
	switch m {
	case cryptNone:
		return b, nil
	case cryptRC4:
		c, _ := rc4.NewCipher(key) // 5..16 bytes: cannot fail
		out := make([]byte, len(b))
		c.XORKeyStream(out, b)
		return out, nil
	}
	if len(b) < 16 {
		return nil, errors.New("encrypted string shorter than its IV")
	}
	if len(b) == 16 {
		return nil, nil
	}
	if len(b)%16 != 0 {
		return nil, errors.New("encrypted string is not whole AES blocks")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(b)-16)
	cipher.NewCBCDecrypter(block, b[:16]).CryptBlocks(out, b[16:])
	return unpad(out), nil
}

// unpad removes PKCS#5 padding; malformed padding is left in place, as
// readers do.
func unpad(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	n := int(b[len(b)-1])
	if n < 1 || n > 16 || n > len(b) {
		return b
	}
	return b[:len(b)-n]
}

// decryptStrings replaces every string in o (deeply) by its decryption as
// a hex string.
func (d *decrypter) decryptStrings(o types.Object, num, gen int) (types.Object, error) {
	if d.strings == cryptNone {
		return o, nil
	}
	switch v := o.(type) {
	case types.StringLiteral, types.HexLiteral:
		b, ok := stringBytes(v)
		if !ok {
			return o, nil
		}
		plain, err := d.decryptBytes(d.strings, num, gen, b)
		if err != nil {
			// Not a ciphertext at all (some writers leave strings in
			// the clear): kept as it is, as readers do.
			return o, nil
		}
		return types.HexLiteral(hex.EncodeToString(plain)), nil
	case types.Dict:
		out := make(types.Dict, len(v))
		for k, e := range v {
			de, err := d.decryptStrings(e, num, gen)
			if err != nil {
				return nil, err
			}
			out[k] = de
		}
		return out, nil
	case types.Array:
		out := make(types.Array, len(v))
		for i, e := range v {
			de, err := d.decryptStrings(e, num, gen)
			if err != nil {
				return nil, err
			}
			out[i] = de
		}
		return out, nil
	}
	return o, nil
}

// streamMethod returns how the data of stream s is encrypted.
func (d *decrypter) streamMethod(s *stream) cryptMethod {
	if t := s.dict.NameEntry("Type"); t != nil {
		switch *t {
		case "XRef":
			return cryptNone // never encrypted
		case "Metadata":
			if !d.encryptMeta {
				return cryptNone
			}
		}
	}
	if hasIdentityCrypt(s.dict) {
		return cryptNone
	}
	return d.streams
}

// hasIdentityCrypt reports whether the stream's own filters include a
// /Crypt filter (ISO 32000-1, 7.4.10). Only the Identity filter is
// supported, which means "not encrypted"; a named one would need a crypt
// filter of the document, which standard-handler files do not use per
// stream in practice.
func hasIdentityCrypt(d types.Dict) bool {
	names, _ := filterList(d)
	for _, n := range names {
		if n == "Crypt" {
			return true
		}
	}
	return false
}

// decryptReader returns a reader of the decrypted data of a stream whose
// raw (encrypted) bytes are raw, rawLen long, and the decrypted length.
// AES needs the last two blocks to know the padding, read first.
func (d *decrypter) decryptReader(m cryptMethod, num, gen int, raw io.ReaderAt, rawOff, rawLen int64) (io.Reader, int64, error) {
	key := d.objectKey(m, num, gen)
	sec := io.NewSectionReader(raw, rawOff, rawLen)
	switch m {
	case cryptNone:
		return sec, rawLen, nil
	case cryptRC4:
		c, _ := rc4.NewCipher(key)
		return &cipher.StreamReader{S: c, R: sec}, rawLen, nil
	}
	if rawLen <= 16 {
		return bytes.NewReader(nil), 0, nil
	}
	if rawLen%16 != 0 {
		return nil, 0, errors.New("encrypted stream is not whole AES blocks")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, 0, err
	}
	var tail [32]byte
	if _, err := raw.ReadAt(tail[:], rawOff+rawLen-32); err != nil {
		return nil, 0, err
	}
	var last [16]byte
	cipher.NewCBCDecrypter(block, tail[:16]).CryptBlocks(last[:], tail[16:])
	plainLen := rawLen - 16 - (16 - int64(len(unpad(last[:]))))
	var iv [16]byte
	if _, err := io.ReadFull(sec, iv[:]); err != nil {
		return nil, 0, err
	}
	cr := &cbcReader{r: sec, mode: cipher.NewCBCDecrypter(block, iv[:])}
	return io.LimitReader(cr, plainLen), plainLen, nil
}

// cbcReader decrypts whole blocks as they are read.
type cbcReader struct {
	r    io.Reader
	mode cipher.BlockMode
	buf  [32 << 10]byte
	out  []byte
	err  error
}

func (c *cbcReader) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		n, err := io.ReadFull(c.r, c.buf[:])
		n -= n % 16
		c.mode.CryptBlocks(c.buf[:n], c.buf[:n])
		c.out = c.buf[:n]
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}
