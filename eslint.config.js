// The one lint config of the front-end code: the reader page, the admin page, the API reference
// (/docs) and the browser client example. Run by tests/test_frontend_lint.py (which installs
// ESLint with `npm ci`).
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: [".venv/**", "node_modules/**", "**/*.egg-info/**"] },
  {
    files: [
      "liveupdates/static/**/*.js",
      "liveupdates/ops/static/**/*.js",
      "liveupdates/api/static/**/*.js",
      "docs/clients/**/*.js",
    ],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module", // every file is an ES module: no globals, explicit imports
      globals: { ...globals.browser },
    },
    rules: {
      ...js.configs.recommended.rules,
      "no-unused-vars": ["error", { caughtErrors: "none" }],
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      // Nothing hangs off window/globalThis: modules export what they share.
      "no-restricted-properties": [
        "error",
        { object: "window", property: "liveupdates", message: "no globals: export it" },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "AssignmentExpression > MemberExpression.left[object.name=/^(window|globalThis|self)$/]",
          message: "no globals: export from a module instead of assigning to window",
        },
      ],
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
    },
  },
];
