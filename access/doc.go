// Package access owns principals and the access decision: the one function,
// used by every interface (S3, admin API, federation, TAXII), that says
// whether a principal may read an object given its confidentiality label
// (DESIGN.md §3, invariant 6).
//
// A principal reads an object only if all of these hold:
//
//  1. its clearance in the label's policy, or in a policy the registry
//     declares equivalent, dominates the label's classification;
//  2. its nation is the owner nation, or is listed in the label's
//     releasability category (with no releasability category, only the
//     owner's nationals read);
//  3. it holds every value of every RESTRICTIVE category;
//  4. for every other PERMISSIVE category it holds at least one value.
//
// INFORMATIVE categories have no effect. A label the registry cannot resolve
// (unknown policy or level) is denied: the decision fails closed.
//
// A refusal is a [*DeniedError] wrapping [ErrDenied]. What a caller must do
// with it is documented on ErrDenied.
package access
