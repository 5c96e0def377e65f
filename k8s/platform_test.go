package k8s_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/leadflow/leadflow/services/platform"
)

// reflectVars lists the `env` tags of a config struct the way caarlos0/env
// sees them at start-up: by reflection, through nested and embedded structs.
func reflectVars(t reflect.Type, out map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, ok := f.Tag.Lookup("env"); ok && name != "" && name != "-" {
			out[strings.Split(name, ",")[0]] = f.Type.String()
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == t.PkgPath() {
			reflectVars(f.Type, out)
		}
	}
}

// TestPlatformVarsByReflection: the variables the manifests are checked
// against (read from the source) are exactly those platform.Base declares,
// by reflection over the compiled type.
func TestPlatformVarsByReflection(t *testing.T) {
	byReflection := map[string]string{}
	reflectVars(reflect.TypeOf(platform.Base{}), byReflection)
	fromSource := readVars(t)
	if len(byReflection) == 0 {
		t.Fatal("platform.Base has no env tags")
	}
	for name, typ := range byReflection {
		v, ok := fromSource[name]
		if !ok {
			t.Errorf("%s (%s) is in platform.Base but not found in the source", name, typ)
			continue
		}
		if v.Type != typ {
			t.Errorf("%s: source says %s, reflection %s", name, v.Type, typ)
		}
	}
	for name := range fromSource {
		if _, ok := byReflection[name]; !ok {
			t.Errorf("%s found in the source but not in platform.Base", name)
		}
	}
}
