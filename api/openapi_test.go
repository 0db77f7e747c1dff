package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/parleyim/parley/protocol"
)

// specFile is the REST contract that api.go's package doc points to.
const specFile = "../docs/openapi.yaml"

// httpMethods are the keys of an OpenAPI path item that name operations.
var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

// loadSpec parses docs/openapi.yaml into a generic tree.
func loadSpec(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatalf("read spec: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", specFile, err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("%s: openapi = %q, want 3.1.x", specFile, v)
	}
	return doc
}

// specOperations returns the spec's operations as "METHOD /path" patterns,
// in the syntax of http.ServeMux.
func specOperations(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatalf("%s has no paths", specFile)
	}
	var ops []string
	for path, item := range paths {
		m, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("path %s is not a path item", path)
		}
		for key := range m {
			if httpMethods[key] {
				ops = append(ops, strings.ToUpper(key)+" "+path)
			}
		}
	}
	slices.Sort(ops)
	return ops
}

// registeredPatterns returns the pattern of every route (*API).Routes
// registers, read from the package's source: the string literal passed to
// a.handle(mux, pattern, …), or to mux.Handle or mux.HandleFunc should a route
// bypass handle, in Routes and in the methods of API it calls (a.xRoutes(mux)
// in another file). A registration whose pattern is not a literal fails the
// test, so no route can escape the comparison with the spec.
func registeredPatterns(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	methods := make(map[string]*ast.FuncDecl) // API's methods by name
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv != nil {
				methods[fd.Name.Name] = fd
			}
		}
	}
	routes := methods["Routes"]
	if routes == nil {
		t.Fatal("package api has no Routes method")
	}
	var patterns []string
	seen := map[string]bool{"Routes": true}
	var inspect func(body *ast.BlockStmt)
	inspect = func(body *ast.BlockStmt) {
		ast.Inspect(body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			arg := -1
			switch name := sel.Sel.Name; name {
			case "handle":
				arg = 1
			case "Handle", "HandleFunc":
				arg = 0
			default:
				if m := methods[name]; m != nil && !seen[name] && len(call.Args) > 0 {
					seen[name] = true
					inspect(m.Body) // a helper that registers more routes
				}
			}
			if arg < 0 {
				return true
			}
			if len(call.Args) <= arg {
				t.Errorf("%s: %s call with too few arguments", fset.Position(call.Pos()), sel.Sel.Name)
				return true
			}
			lit, ok := call.Args[arg].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: route pattern is not a string literal; the spec test cannot see it", fset.Position(call.Pos()))
				return true
			}
			p, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %v", fset.Position(lit.Pos()), err)
			}
			patterns = append(patterns, p)
			return true
		})
	}
	inspect(routes.Body)
	if len(patterns) == 0 {
		t.Fatal("found no routes in (*API).Routes")
	}
	slices.Sort(patterns)
	return patterns
}

var wildcard = regexp.MustCompile(`\{([^{}]+)\}`)

// probe returns a request matching the route pattern "METHOD /path/{x}",
// with every wildcard filled with a sample value.
func probe(pattern string) *http.Request {
	method, path, _ := strings.Cut(pattern, " ")
	path = wildcard.ReplaceAllString(path, "sample-$1")
	return httptest.NewRequest(method, path, nil)
}

// realMux registers the API's routes on a real ServeMux. Registration only
// stores closures, so an API without services is enough.
func realMux() *http.ServeMux {
	mux := http.NewServeMux()
	(&API{}).Routes(mux)
	return mux
}

func TestParsedRoutesAreTheRegisteredOnes(t *testing.T) {
	mux := realMux()
	for _, p := range registeredPatterns(t) {
		if _, got := mux.Handler(probe(p)); got != p {
			t.Errorf("a request for route %q is served by pattern %q: the source parse and the real registration disagree", p, got)
		}
	}
}

func TestEveryRouteIsInTheSpec(t *testing.T) {
	ops := specOperations(t, loadSpec(t))
	for _, p := range registeredPatterns(t) {
		if !slices.Contains(ops, p) {
			t.Errorf("route %q is registered by (*API).Routes but missing from %s", p, specFile)
		}
	}
}

func TestEverySpecOperationIsRegistered(t *testing.T) {
	mux := realMux()
	routes := registeredPatterns(t)
	for _, op := range specOperations(t, loadSpec(t)) {
		_, path, _ := strings.Cut(op, " ")
		if !strings.HasPrefix(path, "/v1/") || path == "/v1/ws" {
			continue // served by package server, not by this package
		}
		if !slices.Contains(routes, op) {
			t.Errorf("%s documents %q, which (*API).Routes does not register", specFile, op)
			continue
		}
		if _, got := mux.Handler(probe(op)); got != op {
			t.Errorf("a request for %q is served by pattern %q", op, got)
		}
	}
}

// TestSpecReferencesResolve checks that every $ref in the spec names
// something in it, and that every /v1/ operation documents its errors with
// the Error schema.
func TestSpecReferencesResolve(t *testing.T) {
	doc := loadSpec(t)
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if k == "$ref" {
					ref, _ := e.(string)
					if _, ok := lookup(doc, ref); !ok {
						t.Errorf("%s: $ref %q does not resolve", at, ref)
					}
					continue
				}
				walk(e, at+"/"+k)
			}
		case []any:
			for i, e := range v {
				walk(e, at+"/"+strconv.Itoa(i))
			}
		}
	}
	walk(doc, "#")

	paths := doc["paths"].(map[string]any)
	for _, op := range specOperations(t, doc) {
		method, path, _ := strings.Cut(op, " ")
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		o := paths[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		responses, _ := o["responses"].(map[string]any)
		errs := 0
		for status, r := range responses {
			if code, err := strconv.Atoi(status); err != nil || code < 400 {
				continue
			}
			if rm, ok := r.(map[string]any); ok {
				if ref, ok := rm["$ref"].(string); ok {
					r, _ = lookup(doc, ref)
				}
			}
			if usesErrorSchema(doc, r) {
				errs++
			}
		}
		if errs == 0 {
			t.Errorf("%s lists no error response with the Error schema", op)
		}
	}
}

// usesErrorSchema reports whether a response has a JSON body of the Error schema.
func usesErrorSchema(doc map[string]any, r any) bool {
	rm, _ := r.(map[string]any)
	content, _ := rm["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	schema, _ := media["schema"].(map[string]any)
	return schema["$ref"] == "#/components/schemas/Error"
}

// lookup resolves a local JSON pointer such as "#/components/schemas/User".
func lookup(doc map[string]any, ref string) (any, bool) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = doc
	for _, part := range strings.Split(rest, "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// TestSpecMatchesProtocol checks the spec against package protocol: its
// protocol version, and its ErrorCode enum against the error code table of
// protocol/errors.go (every code but the kick reasons).
func TestSpecMatchesProtocol(t *testing.T) {
	doc := loadSpec(t)
	info, _ := doc["info"].(map[string]any)
	if v, _ := info["x-protocol-version"].(int); v != protocol.Version {
		t.Errorf("info.x-protocol-version = %v, want %d", info["x-protocol-version"], protocol.Version)
	}

	ec, ok := lookup(doc, "#/components/schemas/ErrorCode")
	if !ok {
		t.Fatal("no ErrorCode schema")
	}
	var documented []string
	for _, c := range ec.(map[string]any)["enum"].([]any) {
		documented = append(documented, c.(string))
	}
	slices.Sort(documented)

	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../protocol/errors.go", nil, 0)
	if err != nil {
		t.Fatalf("parse protocol/errors.go: %v", err)
	}
	var codes []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || strings.HasPrefix(name.Name, "CodeKick") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					c, _ := strconv.Unquote(lit.Value)
					codes = append(codes, c)
				}
			}
		}
	}
	slices.Sort(codes)
	if !slices.Equal(documented, codes) {
		t.Errorf("ErrorCode enum = %v\nprotocol/errors.go codes = %v", documented, codes)
	}
}
