/**
 * Preloaded by `npm run check:deps` (node --import). dependency-cruiser walks swc's AST with
 * @swc/core/Visitor.js, which predates explicit resource management and throws on `using` /
 * `await using` declarations ("Unknown statement type: UsingDeclaration"), aborting the whole check.
 * This teaches the visitor to walk such a declaration like a `const`: its initialisers are visited, so a
 * dynamic import() inside one still counts as a dependency.
 */
import { createRequire } from 'node:module';

// The same (hoisted) module instance dependency-cruiser imports, so its visitor subclass sees the patch.
const { Visitor } = createRequire(import.meta.url)('@swc/core/Visitor.js');

const visitStatement = Visitor.prototype.visitStatement;
Visitor.prototype.visitStatement = function visitStatementWithUsing(statement) {
  if (statement.type === 'UsingDeclaration') return visitUsing(this, statement);
  return visitStatement.call(this, statement);
};

const visitPattern = Visitor.prototype.visitPattern;
// `for (using x of …)`: the visitor sends a left side that is not a VariableDeclaration to visitPattern.
Visitor.prototype.visitPattern = function visitPatternWithUsing(pattern) {
  if (pattern.type === 'UsingDeclaration') return visitUsing(this, pattern);
  return visitPattern.call(this, pattern);
};

function visitUsing(visitor, declaration) {
  declaration.decls = visitor.visitVariableDeclarators(declaration.decls);
  return declaration;
}
