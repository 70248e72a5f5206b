/**
 * The AWS actions a piece of the code can call, found in its source with the TypeScript checker:
 * every `new XxxCommand(…)` whose class is imported from an `@aws-sdk/client-*` package (the
 * service is the package's: client-ec2 → ec2, client-ssm → ssm, client-sts → sts …), plus the
 * action behind a credential provider (`fromTemporaryCredentials` → sts:AssumeRole, used for the
 * policy's roleArn).
 *
 * Starting from whole entry files, the scan follows what their code references, declaration by
 * declaration, across the project's own modules: a function imported from another file brings in
 * that function, not the whole file. So `plan.ts`, which imports `selectOrphans` from
 * activities/retention.ts, is not charged with the DeregisterImage that the same file's
 * applyRetention sends.
 */
import path from 'node:path';
import ts from 'typescript';

/** Credential providers that call AWS themselves, and the action each one needs. */
const CREDENTIAL_PROVIDER_ACTIONS: Record<string, string> = {
  fromTemporaryCredentials: 'sts:AssumeRole',
  fromWebToken: 'sts:AssumeRoleWithWebIdentity',
  fromTokenFile: 'sts:AssumeRoleWithWebIdentity',
};

export interface FoundAction {
  action: string;
  /** Where the call is, relative to the project root (file:line). */
  at: string;
}

function serviceOf(moduleName: string): string | undefined {
  return /^@aws-sdk\/client-([a-z0-9-]+)$/.exec(moduleName)?.[1];
}

function importModuleOf(symbol: ts.Symbol): string | undefined {
  for (const decl of symbol.declarations ?? []) {
    let node: ts.Node | undefined = decl;
    while (node && !ts.isImportDeclaration(node)) node = node.parent;
    if (node && ts.isStringLiteral(node.moduleSpecifier)) return node.moduleSpecifier.text;
  }
  return undefined;
}

/** The statement at the top of its file that holds `node` (the unit the scan follows). */
function topLevelStatement(node: ts.Node): ts.Node {
  let current = node;
  while (current.parent && !ts.isSourceFile(current.parent)) current = current.parent;
  return current;
}

/** Every AWS action reachable from the code of `entryFiles` (absolute paths), sorted. */
export function awsActionsReachableFrom(root: string, entryFiles: string[]): FoundAction[] {
  const configPath = path.join(root, 'tsconfig.json');
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  // Only the project's own modules are loaded: packages (the AWS SDK's declarations are tens of
  // megabytes) stay unresolved, and an imported name still tells its module by its import.
  const options: ts.CompilerOptions = { ...parsed.options, noEmit: true, noLib: true, types: [] };
  const host = ts.createCompilerHost(options);
  host.resolveModuleNames = (names, containingFile) =>
    names.map((name) => (name.startsWith('.') ? ts.resolveModuleName(name, containingFile, options, host).resolvedModule : undefined));
  const program = ts.createProgram({ rootNames: entryFiles, options, host });
  const checker = program.getTypeChecker();
  const srcDir = path.join(root, 'src') + path.sep;
  const isOwnSource = (file: ts.SourceFile) => file.fileName.startsWith(srcDir.split(path.sep).join('/')) && !file.isDeclarationFile;

  const found = new Map<string, FoundAction>();
  const visited = new Set<ts.Node>();
  const queue: ts.Node[] = [];
  const enqueue = (node: ts.Node) => {
    if (!visited.has(node)) {
      visited.add(node);
      queue.push(node);
    }
  };
  for (const file of entryFiles) {
    const source = program.getSourceFile(file);
    if (!source) throw new Error(`${file} is not part of the program`);
    source.statements.forEach(enqueue);
  }

  const record = (action: string, node: ts.Node) => {
    const file = node.getSourceFile();
    const line = file.getLineAndCharacterOfPosition(node.getStart()).line + 1;
    if (!found.has(action)) found.set(action, { action, at: `${path.relative(root, file.fileName)}:${line}` });
  };

  const visit = (node: ts.Node): void => {
    if (ts.isNewExpression(node) && ts.isIdentifier(node.expression)) {
      const symbol = checker.getSymbolAtLocation(node.expression);
      const service = symbol && serviceOf(importModuleOf(symbol) ?? '');
      const name = node.expression.text;
      if (service && name.endsWith('Command')) record(`${service}:${name.slice(0, -'Command'.length)}`, node);
    }
    if (ts.isIdentifier(node)) {
      let symbol = checker.getSymbolAtLocation(node);
      if (symbol) {
        const fromModule = importModuleOf(symbol);
        const inImport = ts.findAncestor(node, ts.isImportDeclaration) !== undefined;
        if (!inImport && fromModule === '@aws-sdk/credential-providers' && CREDENTIAL_PROVIDER_ACTIONS[node.text]) {
          record(CREDENTIAL_PROVIDER_ACTIONS[node.text]!, node);
        }
        if (symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
        for (const decl of symbol.declarations ?? []) {
          if (isOwnSource(decl.getSourceFile())) enqueue(topLevelStatement(decl));
        }
      }
    }
    ts.forEachChild(node, visit);
  };

  while (queue.length > 0) visit(queue.shift()!);
  return [...found.values()].sort((a, b) => a.action.localeCompare(b.action));
}
