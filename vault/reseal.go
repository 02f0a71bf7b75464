package vault

import "github.com/embassy-dev/embassy/manifest"

// Reseal returns env sealed again in the current manifest format
// (manifest.Format) when it is of an older one: the same manifest, of the
// same revision, in a smaller envelope. The index's migration
// (boltindex.MigrateRecords) uses it to shrink what older nodes wrote; the
// copies on the sites keep their format until the version is next
// rewritten, which is safe, as both formats are read and copies are
// compared by revision, not by bytes. It refuses (false) an envelope that
// does not verify, is of the current format already, or is sealed under a
// manifest key other than the current one: a key rotation is under way,
// and its pass, which rewrites the sites' copies too, must still see it.
func (e *Engine) Reseal(env []byte) ([]byte, bool) {
	if f := manifest.EnvelopeFormat(env); f == 0 || f >= manifest.Format {
		return nil, false
	}
	// One keyring for the check and both steps: the new envelope is
	// sealed under the key the old one was.
	k := e.k()
	if envelopeKeyID(env) != k.ManifestKeyID() {
		return nil, false
	}
	m, err := manifest.Open(env, k)
	if err != nil {
		return nil, false
	}
	out, err := manifest.Seal(m, k)
	if err != nil {
		return nil, false
	}
	return out, true
}
