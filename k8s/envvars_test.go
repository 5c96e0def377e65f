package k8s_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// envVar is one variable a service reads, found in the code.
type envVar struct {
	Name    string
	Type    string // Go type of the field: "string", "time.Duration", "int", …
	Default string
	Where   string // the struct field that reads it
}

// configRoots are the configuration structs of the code, by package
// directory (relative to this module): the platform's Base, and each
// service's app.Config (LEADFLOW_<SERVICE>_*) when that package exists.
func configRoots() map[string]string {
	roots := map[string]string{platformDir: "Base"}
	for _, s := range services {
		roots["../services/"+s.name+"/app"] = "Config"
	}
	return roots
}

var (
	codeVarsOnce sync.Once
	codeVars     map[string]map[string]envVar // package dir → variables
	codeVarsErr  error
)

const platformDir = "../services/platform"

// readVarsOf returns the variables a service reads: platform.Base's plus
// its own app.Config's (LEADFLOW_<SERVICE>_*). An empty service name means
// the platform's only.
func readVarsOf(t *testing.T, svc string) map[string]envVar {
	t.Helper()
	codeVarsOnce.Do(func() {
		codeVars = map[string]map[string]envVar{}
		for dir, root := range configRoots() {
			if _, err := os.Stat(dir); err != nil {
				continue // a service without its app package yet
			}
			vars := map[string]envVar{}
			if err := structVars(dir, root, vars); err != nil {
				codeVarsErr = err
				return
			}
			codeVars[dir] = vars
		}
	})
	if codeVarsErr != nil {
		t.Fatal(codeVarsErr)
	}
	out := map[string]envVar{}
	for k, v := range codeVars[platformDir] {
		out[k] = v
	}
	if _, ok := out["LEADFLOW_REDIS_URL"]; !ok {
		t.Fatalf("platform.Base in %s has no LEADFLOW_REDIS_URL: has the configuration moved? found %v", platformDir, sortedKeys(out))
	}
	if svc != "" {
		for k, v := range codeVars["../services/"+svc+"/app"] {
			out[k] = v
		}
	}
	return out
}

// readVars is the platform's variables (shared by every service).
func readVars(t *testing.T) map[string]envVar { return readVarsOf(t, "") }

func structVars(dir, root string, out map[string]envVar) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	structs := map[string]*ast.StructType{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if ts, ok := n.(*ast.TypeSpec); ok {
				if st, ok := ts.Type.(*ast.StructType); ok {
					structs[ts.Name.Name] = st
				}
			}
			return true
		})
	}
	st, ok := structs[root]
	if !ok {
		if root == "Base" {
			return &os.PathError{Op: "find type Base", Path: dir, Err: os.ErrNotExist}
		}
		return nil
	}
	var walk func(typeName string, st *ast.StructType, seen map[string]bool)
	walk = func(typeName string, st *ast.StructType, seen map[string]bool) {
		if seen[typeName] {
			return
		}
		seen[typeName] = true
		for _, f := range st.Fields.List {
			typ := exprString(f.Type)
			if f.Tag != nil {
				tag, _ := strconv.Unquote(f.Tag.Value)
				st := reflect.StructTag(tag)
				if name, ok := st.Lookup("env"); ok && name != "" && name != "-" {
					name = strings.Split(name, ",")[0]
					field := typeName
					if len(f.Names) > 0 {
						field += "." + f.Names[0].Name
					}
					def, _ := st.Lookup("envDefault")
					out[name] = envVar{Name: name, Type: typ, Default: def, Where: filepath.Base(dir) + "." + field}
					continue
				}
			}
			if nested, ok := structs[typ]; ok {
				walk(typ, nested, seen)
			}
		}
	}
	walk(root, st, map[string]bool{})
	return nil
}

func exprString(e ast.Expr) string {
	switch v := e.(type) {
	case *ast.Ident:
		return v.Name
	case *ast.SelectorExpr:
		return exprString(v.X) + "." + v.Sel.Name
	case *ast.StarExpr:
		return "*" + exprString(v.X)
	case *ast.ArrayType:
		return "[]" + exprString(v.Elt)
	default:
		return "?"
	}
}

// otelVars are the OpenTelemetry SDK variables the manifests may set (the
// platform builds its exporters with autoexport, which reads these).
var otelVars = map[string]bool{
	"OTEL_SERVICE_NAME":                   true,
	"OTEL_RESOURCE_ATTRIBUTES":            true,
	"OTEL_EXPORTER_OTLP_ENDPOINT":         true,
	"OTEL_EXPORTER_OTLP_PROTOCOL":         true,
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  true,
	"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": true,
	"OTEL_EXPORTER_OTLP_HEADERS":          true,
	"OTEL_EXPORTER_OTLP_INSECURE":         true,
	"OTEL_TRACES_EXPORTER":                true,
	"OTEL_METRICS_EXPORTER":               true,
	"OTEL_LOGS_EXPORTER":                  true,
	"OTEL_TRACES_SAMPLER":                 true,
	"OTEL_TRACES_SAMPLER_ARG":             true,
	"OTEL_PROPAGATORS":                    true,
	"OTEL_METRIC_EXPORT_INTERVAL":         true,
}

// checkVar fails when name is a LEADFLOW_* or OTEL_* variable the services
// do not read, or when its value would not parse as the field's type.
func checkVar(t *testing.T, svc, where, name, value string, hasValue bool) {
	t.Helper()
	vars := readVarsOf(t, svc)
	switch {
	case strings.HasPrefix(name, "LEADFLOW_"):
		v, ok := vars[name]
		if !ok {
			t.Errorf("%s: sets %s, which %s does not read (neither platform.Base nor services/%s/app.Config has it)", where, name, svc, svc)
			return
		}
		if hasValue {
			if err := parseAs(v.Type, value); err != nil {
				t.Errorf("%s: %s=%q does not parse as %s (%s): %v", where, name, value, v.Type, v.Where, err)
			}
		}
	case strings.HasPrefix(name, "OTEL_"):
		if !otelVars[name] {
			t.Errorf("%s: sets %s, not an OpenTelemetry SDK variable the platform uses", where, name)
		}
	}
}

func parseAs(typ, value string) error {
	var err error
	switch typ {
	case "time.Duration":
		_, err = parseDuration(value)
	case "int", "int64", "int32":
		_, err = strconv.ParseInt(value, 10, 64)
	case "uint", "uint64", "uint32":
		_, err = strconv.ParseUint(value, 10, 64)
	case "bool":
		_, err = strconv.ParseBool(value)
	case "float64":
		_, err = strconv.ParseFloat(value, 64)
	}
	return err
}

func TestCodeVarsFound(t *testing.T) {
	vars := readVars(t)
	for _, want := range []string{
		"LEADFLOW_GRPC_ADDR", "LEADFLOW_REDIS_URL",
		"LEADFLOW_CAPTURE_ADDR", "LEADFLOW_SCORING_ADDR", "LEADFLOW_ROUTING_ADDR", "LEADFLOW_PIPELINE_ADDR", "LEADFLOW_REPORTING_ADDR",
		"LEADFLOW_AUTH_TOKENS", "LEADFLOW_AUTH_TOKENS_FILE", "LEADFLOW_CLIENT_TOKEN",
		"LEADFLOW_SHUTDOWN_TIMEOUT", "LEADFLOW_SHUTDOWN_DRAIN", "LEADFLOW_MAX_DEADLINE", "LEADFLOW_CLIENT_TIMEOUT", "LEADFLOW_LOG_LEVEL",
	} {
		if _, ok := vars[want]; !ok {
			t.Errorf("the platform no longer reads %s (the README (Architecture reference) lists it); found %v", want, sortedKeys(vars))
		}
	}
	if v := vars["LEADFLOW_SHUTDOWN_TIMEOUT"]; v.Type != "time.Duration" {
		t.Errorf("LEADFLOW_SHUTDOWN_TIMEOUT is a %s, want time.Duration", v.Type)
	}
}
