package main

import (
	"encoding/json"
	"reflect"

	"github.com/embassy-dev/embassy/access"
)

// The --json forms follow one set of conventions (docs/cli.md,
// Conventions), checked by TestJSONOutputs against the field names
// documented there:
//
//   - field names are snake_case;
//   - a list is always present, [] when empty, never null;
//   - a time is present only when known (never 0001-01-01T00:00:00Z).
//
// printJSON applies the second to every value it prints (nil slices and
// maps become empty ones). Reports whose types omit empty lists are printed
// through the wrappers below, whose list fields take precedence over the
// embedded ones and are never omitted.

// printJSON writes v as indented JSON, with every nil slice or map printed
// as [] or {}.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(emptyLists(v))
}

// emptyLists returns a copy of v in which every nil slice and nil map
// reachable through exported fields, pointers, slices, maps and interfaces
// is an empty one. v itself is not changed.
func emptyLists(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return v
	}
	cp := reflect.New(rv.Type()).Elem()
	cp.Set(rv)
	fillLists(cp)
	return cp.Interface()
}

func fillLists(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		p := reflect.New(v.Elem().Type())
		p.Elem().Set(v.Elem())
		fillLists(p.Elem())
		v.Set(p)
	case reflect.Interface:
		if v.IsNil() {
			return
		}
		e := reflect.New(v.Elem().Type()).Elem()
		e.Set(v.Elem())
		fillLists(e)
		v.Set(e)
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				fillLists(f)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(s, v)
		for i := range s.Len() {
			fillLists(s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			fillLists(e)
			m.SetMapIndex(it.Key(), e)
		}
		v.Set(m)
	}
}

// principalJSON is a principal with its roles always present.
type principalJSON struct {
	access.Principal
	Roles []string `json:"roles"`
}
