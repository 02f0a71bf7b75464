package node

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// OperationKinds (which two_person.per_operation is checked against) lists
// exactly the kinds Node.execute carries out.
func TestOperationKindsAreExecuted(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "approvals.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var executed []string
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Name.Name != "execute" {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if cc, ok := n.(*ast.CaseClause); ok {
				for _, e := range cc.List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						executed = append(executed, s)
					}
				}
			}
			return true
		})
	}
	if len(executed) == 0 {
		t.Fatal("found no case of Node.execute in approvals.go")
	}
	got, want := slices.Sorted(slices.Values(OperationKinds)), slices.Sorted(slices.Values(executed))
	if !slices.Equal(got, want) {
		t.Errorf("OperationKinds = %q, Node.execute carries out %q", got, want)
	}
}
