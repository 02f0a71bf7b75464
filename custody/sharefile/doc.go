// Package sharefile owns the file that carries one custodian's Shamir share
// of a node's root key: the share (an encoded shamir.SetShare) encrypted to
// that custodian, behind a plain header that says whose it is.
//
// A share can be sealed two ways:
//
//   - to a passphrase (PassphraseRecipient, PassphraseIdentity): Argon2id
//     with parameters stored in the file (default 64 MiB, 3 passes, 2 lanes)
//     derives an AES-256-GCM key;
//   - to a custodian key (HybridRecipient, HybridIdentity, made by
//     GenerateKey): HPKE (RFC 9180) with the post-quantum hybrid KEM
//     MLKEM768-X25519, HKDF-SHA256 and AES-256-GCM.
//
// Either way the whole header is the AEAD's associated data, so a file whose
// header was altered does not open. ParseHeader reads the header without a
// key, for showing; only Open authenticates it.
//
// # Share file, version 1
//
// All integers are unsigned and big-endian.
//
//	size  field
//	8     magic "EMBSHARE"
//	1     version, 0x01
//	1     method: 0x01 passphrase, 0x02 custodian key
//	1     N, length of the node id, 1..255
//	N     node id, printable UTF-8
//	1     C, length of the custodian name, 1..255
//	C     custodian name, printable UTF-8
//	16    share-set id
//	1     threshold t, 2..n
//	1     total n, t..255
//	1     share index (the share's Shamir x), 1..n
//
// then, for method 0x01:
//
//	4     Argon2id time (passes), 1..16 to open
//	4     Argon2id memory in KiB, 8·threads..1,048,576 (1 GiB) to open
//	1     Argon2id threads (lanes), at least 1
//	16    salt
//	12    AES-GCM nonce
//
// or, for method 0x02:
//
//	2     HPKE KEM id, 0x647a (MLKEM768-X25519)
//	2     HPKE KDF id, 0x0001 (HKDF-SHA256)
//	2     HPKE AEAD id, 0x0002 (AES-256-GCM)
//	32    fingerprint of the custodian public key (see below)
//	1120  HPKE encapsulated key
//
// That is the header. The rest of the file is the ciphertext of the encoded
// share with its 16-byte tag, 86 to 1,094 bytes; the associated data is the
// header, every byte of it. For method 0x01 the key is
// Argon2id(passphrase, salt, time, memory, threads) of 32 bytes. For method
// 0x02 the HPKE info is
//
//	"embassy custodian share v1" || 0x00 || N || node id || C || custodian name || share-set id
//
// and the ciphertext is the first (and only) Seal of the HPKE context.
// After decrypting, Open checks that the share's set id, threshold, total and
// index are the header's.
//
// # Armour
//
// Armor writes a share file as text for printing or mail, in the manner of
// RFC 7468: a few explanatory lines for people (node, custodian, share i of
// n, share set, how it is sealed; not authenticated and ignored by readers),
// a blank line, then
//
//	-----BEGIN EMBASSY CUSTODIAN SHARE-----
//	base64 of the binary file, 64 characters a line
//	-----END EMBASSY CUSTODIAN SHARE-----
//
// Open and ParseHeader take either form. A file holding two blocks is
// refused.
//
// # Custodian keys
//
// A public key is encoded as the 2-byte KEM id 0x647a followed by the
// 1,216-byte MLKEM768-X25519 public key; its fingerprint is the SHA-256 of
// that encoding, shown as "SHA256:" and unpadded base64. A private key is
// the KEM id followed by the 32-byte seed. Both are kept as armoured text,
// labelled EMBASSY CUSTODIAN PUBLIC KEY and EMBASSY CUSTODIAN PRIVATE KEY.
// A HybridIdentity never shows its key bytes except through PrivateKeyFile
// and EncryptedPrivateKeyFile.
//
// An encrypted private key file (EncryptedPrivateKeyFile,
// DecryptHybridIdentity) is labelled EMBASSY CUSTODIAN ENCRYPTED PRIVATE KEY
// and its body is, 88 bytes in all:
//
//	1     version, 0x01
//	4     Argon2id time
//	4     Argon2id memory in KiB
//	1     Argon2id threads
//	16    salt
//	12    AES-GCM nonce
//	50    AES-256-GCM of the 34-byte private key encoding, with its tag;
//	      the associated data is the 38 bytes before it
//
// with the same Argon2id key derivation and limits as method 0x01.
package sharefile
