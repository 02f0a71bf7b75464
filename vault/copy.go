package vault

import (
	"context"
	"fmt"

	"github.com/embassy-dev/embassy/access"
)

// Copies. An interface that copies an object (S3 CopyObject and
// UploadPartCopy) reads the source through Get, which applies the access
// decision to it, and writes the destination through Put or PutPart, which
// apply the write rules. What neither sees is the change between the two:
// a copy under a label, or into a vault of another owner, that lets more
// nations or lower clearances read the data than could read the source.
// That is lowering the label (Widens), and takes two custodians.

// CheckCopy decides whether the context's principal may copy src into
// vault dstVault under dstLabel. A copy that widens who may read the data
// becomes a two-person request (kind "object.copy", with params, which must
// let the node carry the copy out: src_vault, src_key, src_version,
// dst_vault, dst_key, label, and the metadata to give the copy).
func (e *Engine) CheckCopy(ctx context.Context, src ObjectInfo, dstVault, dstKey, dstLabel string, params map[string]string) error {
	sv, err := e.Vault(src.Vault)
	if err != nil {
		return err
	}
	dv, err := e.Vault(dstVault)
	if err != nil {
		return err
	}
	why, err := e.Widens(sv.Owner, src.Label, dv.Owner, dstLabel)
	if err != nil || why == "" {
		return err
	}
	p := map[string]string{"src_vault": src.Vault, "src_key": src.Key, "src_version": src.VersionID.String(),
		"dst_vault": dstVault, "dst_key": dstKey, "label": dstLabel}
	for k, v := range params {
		if _, set := p[k]; !set {
			p[k] = v
		}
	}
	return e.require(ctx, Operation{Kind: "object.copy", Params: p,
		Summary: fmt.Sprintf("copy %s/%s version %s (owner %s, label %s) to %s/%s (owner %s, label %s): %s",
			src.Vault, src.Key, src.VersionID, sv.Owner, orUnlabelled(src.Label), dstVault, dstKey, dv.Owner, orUnlabelled(dstLabel), why)})
}

// CheckPartCopy decides whether the context's principal may copy src into
// a part of upload uploadID. A part takes its upload's label and vault; a
// copy that would widen who may read the source is refused (there is no
// two-person path for a part: copy the whole object with CopyObject, which
// has one).
func (e *Engine) CheckPartCopy(ctx context.Context, src ObjectInfo, dstVault, dstKey, uploadID string) error {
	sv, err := e.Vault(src.Vault)
	if err != nil {
		return err
	}
	dv, err := e.Vault(dstVault)
	if err != nil {
		return err
	}
	_, rec, err := e.upload(ctx, dstVault, dstKey, uploadID)
	if err != nil {
		return err
	}
	if err := e.mayChangeUpload(ctx, dv, uploadID, rec); err != nil {
		return err
	}
	why, err := e.Widens(sv.Owner, src.Label, dv.Owner, rec.Label)
	if err != nil || why == "" {
		return err
	}
	p, _ := PrincipalFrom(ctx)
	return &access.DeniedError{Principal: p.Name, Reason: access.ReasonLabel,
		Detail: fmt.Sprintf("copying %s/%s into upload %s of %s would widen who may read it (%s)", src.Vault, src.Key, uploadID, dstVault, why)}
}
