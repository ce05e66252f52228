package admin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"encoding/json"
)

// maxDepth bounds the nesting of a request body; ours need 2.
const maxDepth = 8

// decode reads the JSON object body of r into v strictly: a JSON content
// type (when one is given; UTF-8 only), at most maxBody bytes of valid
// UTF-8 holding exactly one object, no key twice, no key encoding/json
// would match only case-insensitively, no unknown field, and no null
// except for the fields named in nullable.
func decode(w http.ResponseWriter, r *http.Request, v any, nullable ...string) error {
	return decodeBody(w, r, v, nullable, nil)
}

// decodeFree is decode for a body whose top-level fields named in free
// hold objects with keys of any spelling (header and cookie names, into
// maps), each still given once.
func decodeFree(w http.ResponseWriter, r *http.Request, v any, free ...string) error {
	return decodeBody(w, r, v, nil, free)
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any, nullable, free []string) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		cs := strings.ToLower(params["charset"])
		if err != nil || mt != "application/json" || (cs != "" && cs != "utf-8" && cs != "utf8") {
			return &Error{Code: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("Content-Type %q is not application/json (UTF-8)", ct)}
		}
	}
	tooLarge := &Error{Code: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body larger than %d bytes", maxBody)}
	if r.ContentLength > maxBody {
		return tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return tooLarge
		}
		return badRequest("read request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty; send a JSON object")
	}
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	nulls, err := checkShape(body, free)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return badRequest("malformed JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			return badRequest("field %q must be %s, not %s", typ.Field, typ.Type, typ.Value)
		default:
			return badRequest("invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	for _, k := range nulls {
		if !slices.Contains(nullable, k) {
			return badRequest("field %q must not be null (leave it out to keep the current value)", k)
		}
	}
	return nil
}

// checkShape checks what encoding/json would let through in body: a top
// level that is not an object, nesting deeper than maxDepth, a key given
// twice (json keeps the last), a key that is not lower-case snake_case
// (json matches keys case-insensitively, even by Unicode folding) but in
// the objects of the top-level fields named in free, and data after the
// object. It returns the top-level keys whose value is null.
func checkShape(body []byte, free []string) (nulls []string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, badRequest("request body must be a JSON object, not %s", kindOf(tok))
	}
	// frame is one open object or array.
	type frame struct {
		object    bool
		keys      map[string]bool // object keys seen
		expectKey bool            // in an object: the next token is a key or '}'
		key       string          // in an object: the key whose value comes next
		free      bool            // keys may be spelt any way (a map's)
	}
	stack := []*frame{{object: true, keys: map[string]bool{}, expectKey: true}}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		top := stack[len(stack)-1]
		if top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				continue
			}
			key, _ := tok.(string)
			if !top.free && !isFieldName(key) {
				return nil, badRequest("unknown field %q", key)
			}
			if top.keys[key] {
				return nil, badRequest("field %q appears twice", key)
			}
			top.keys[key] = true
			top.key, top.expectKey = key, false
			continue
		}
		if top.object {
			top.expectKey = true // this token starts or is the value
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= maxDepth {
					return nil, badRequest("request body is nested deeper than %d levels", maxDepth)
				}
				f := &frame{object: t == '{', keys: map[string]bool{}, expectKey: t == '{'}
				f.free = f.object && len(stack) == 1 && slices.Contains(free, top.key)
				stack = append(stack, f)
			case ']':
				stack = stack[:len(stack)-1]
			}
		case nil:
			if len(stack) == 1 {
				nulls = append(nulls, top.key)
			}
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("request body has data after the JSON object")
	}
	return nulls, nil
}

// isFieldName reports whether k is a key our bodies can have: lower-case
// ASCII letters, digits and underscores.
func isFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func syntaxError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return badRequest("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: the body ends inside the object")
	default:
		return badRequest("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

// kindOf names the JSON type of a first token.
func kindOf(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "an array"
		}
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}
