// Unit tests of the Jinja interpreter behind chat templates: each language
// feature, each filter/test/method family, the whitespace rules Hugging Face
// uses, and every error path (syntax, unknown names, runtime errors, limits).
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <string>

#include "common/test_util.h"
#include "engine/chat/template.h"
#include "engine/common/error.h"

using hai::chat::RenderOptions;
using hai::chat::Template;
using json = nlohmann::ordered_json;

namespace {

std::string R(const std::string& src, const json& ctx = json::object(), const RenderOptions& o = {}) {
  return Template(src, "t").render(ctx, o);
}

// The message of the hai::Error that parsing or rendering throws ("" if none).
std::string E(const std::string& src, const json& ctx = json::object(), const RenderOptions& o = {}) {
  try {
    Template(src, "t").render(ctx, o);
  } catch (const hai::Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR(msg, needle) \
  do { \
    std::string m_ = (msg); \
    EXPECT_NE(m_.find(needle), std::string::npos) << "error was: '" << m_ << "'"; \
  } while (0)

}  // namespace

// ---- text, expressions, whitespace --------------------------------------------

TEST(ChatTemplate, PlainTextAndTrailingNewline) {
  EXPECT_EQ(R("hello"), "hello");
  EXPECT_EQ(R("hello\n"), "hello");      // one trailing newline is dropped
  EXPECT_EQ(R("hello\n\n"), "hello\n");
  EXPECT_EQ(R(""), "");
}

TEST(ChatTemplate, Literals) {
  EXPECT_EQ(R("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}"), "abcd");
  EXPECT_EQ(R("{{ 'tab\\tnl\\n\\u00e9\\x41\\'' }}"), "tab\tnl\n\xC3\xA9" "A'");
  EXPECT_EQ(R("{{ 42 }} {{ -7 }} {{ 1.5 }} {{ 2.0 }} {{ 1e3 }} {{ 1_000 }}"), "42 -7 1.5 2.0 1000.0 1000");
  EXPECT_EQ(R("{{ true }} {{ False }} [{{ none }}] [{{ None }}]"), "true false [] []");
  EXPECT_EQ(R("{{ [1, 'a', none, true] }}"), "[1, \"a\", null, true]");
  EXPECT_EQ(R("{{ {'k': [1, 2], 'n': {'x': 1.5}} }}"), "{\"k\": [1, 2], \"n\": {\"x\": 1.5}}");
  EXPECT_EQ(R("{{ (1, 2) }}{{ () | length }}"), "[1, 2]0");
}

TEST(ChatTemplate, Comments) {
  EXPECT_EQ(R("a{# comment {{ x }} #}b"), "ab");
  EXPECT_EQ(R("a  {#- c -#}  b"), "ab");
  EXPECT_EQ(R("a\n{# c #}\nb"), "a\nb");  // trim_blocks after a comment
}

TEST(ChatTemplate, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'x' -}}  b"), "axb");
  EXPECT_EQ(R("a  {%- if true -%}  x  {%- endif -%}  b"), "axb");
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before it.
  EXPECT_EQ(R("<\n  {% if true %}\n  x\n  {% endif %}\n>"), "<\n  x\n>");
  // Not for {{ }}: text around expressions stays.
  EXPECT_EQ(R("  {{ 'x' }}\n."), "  x\n.");
  // lstrip only when the tag starts the line.
  EXPECT_EQ(R("a {% if true %}b{% endif %}"), "a b");
  // {%+ and +%} turn the rules off for one tag.
  EXPECT_EQ(R("  {%+ if true +%}\nx{% endif %}"), "  \nx");
}

TEST(ChatTemplate, RawBlock) {
  EXPECT_EQ(R("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
  EXPECT_EQ(R("{%- raw -%}  {% x %}  {%- endraw %}"), "{% x %}");
}

TEST(ChatTemplate, ArithmeticAndConcat) {
  EXPECT_EQ(R("{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }}"), "7 9 3 -4 1 2");
  EXPECT_EQ(R("{{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }}"), "3.5 2.0 1024 0.5 2.5");
  EXPECT_EQ(R("{{ 'a' ~ 1 ~ none ~ true ~ undefined_var }}"), "a1Nonetrue");
  EXPECT_EQ(R("{{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }} {{ 'n=' + 3 }}"), "ab [1, 2] ababab n=3");
  EXPECT_EQ(R("{{ -(3) }} {{ +4 }} {{ - 2.5 }}"), "-3 4 -2.5");
  EXPECT_EQ(R("{{ 0.1 + 0.2 }} {{ 1e21 * 10 }} {{ 1 / 3 }}"), "0.30000000000000004 1e+22 0.3333333333333333");
}

TEST(ChatTemplate, ComparisonsAndLogic) {
  EXPECT_EQ(R("{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' > 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ [1,2] == [1,2] }}"),
            "true true false true false true");
  EXPECT_EQ(R("{{ 0 or 'x' }} {{ 'y' and 0 }} {{ not 0 }} {{ not not 'a' }} {{ [] or {} or 'z' }}"), "x 0 true true z");
  EXPECT_EQ(R("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in undef }}"),
            "true true true true false");
  EXPECT_EQ(R("{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'yes' if 0 }}]"), "yes no []");
  EXPECT_EQ(R("{{ 'a' if false else 'b' if false else 'c' }}"), "c");
}

TEST(ChatTemplate, AttributesSubscriptsSlices) {
  json ctx = {{"d", {{"a", {{"b", "deep"}}}, {"list", {10, 20, 30, 40}}}}, {"s", "h\xC3\xA9llo"}};
  EXPECT_EQ(R("{{ d.a.b }} {{ d['a']['b'] }} {{ d.list[1] }} {{ d.list[-1] }} {{ d.list.0 }}", ctx), "deep deep 20 40 10");
  EXPECT_EQ(R("[{{ d.missing }}][{{ d.missing.deeper }}][{{ d.list[99] }}][{{ nothing.at.all }}]", ctx), "[][][][]");
  EXPECT_EQ(R("{{ d.list[1:] }} {{ d.list[:2] }} {{ d.list[::-1] }} {{ d.list[-2:] }} {{ d.list[::2] }}", ctx),
            "[20, 30, 40] [10, 20] [40, 30, 20, 10] [30, 40] [10, 30]");
  EXPECT_EQ(R("{{ s[1] }} {{ s[::-1] }} {{ s[1:3] }} {{ s | length }}", ctx), "\xC3\xA9 oll\xC3\xA9h \xC3\xA9l 5");
}

// ---- statements ----------------------------------------------------------------

TEST(ChatTemplate, IfElifElse) {
  const char* t = "{% if x == 1 %}one{% elif x == 2 %}two{% elif x == 3 %}three{% else %}many{% endif %}";
  EXPECT_EQ(R(t, {{"x", 1}}), "one");
  EXPECT_EQ(R(t, {{"x", 2}}), "two");
  EXPECT_EQ(R(t, {{"x", 3}}), "three");
  EXPECT_EQ(R(t, {{"x", 9}}), "many");
  EXPECT_EQ(R("{% if undefined_thing %}a{% else %}b{% endif %}"), "b");
}

TEST(ChatTemplate, ForLoopVariables) {
  json ctx = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(R("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}"
              "{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ x }};{% endfor %}", ctx),
            "1032truefalse3a;2121falsefalse3b;3210falsetrue3c;");
  EXPECT_EQ(R("{% for x in xs %}[{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }}]{% endfor %}", ctx), "[<a>b][a<b>c][b<c>]");
  EXPECT_EQ(R("{% for x in xs %}{{ loop.cycle('o', 'e') }}{% endfor %}", ctx), "oeo");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in missing %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(R("{% for c in 'h\xC3\xA9' %}<{{ c }}>{% endfor %}"), "<h><\xC3\xA9>");
}

TEST(ChatTemplate, ForLoopUnpackingFilterAndControl) {
  json ctx = {{"d", {{"a", 1}, {"b", 2}, {"c", 3}}}};
  EXPECT_EQ(R("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", ctx), "a=1,b=2,c=3,");
  EXPECT_EQ(R("{% for k in d %}{{ k }}{% endfor %}", ctx), "abc");
  EXPECT_EQ(R("{% for k, v in d | items %}{{ v }}{% endfor %}", ctx), "123");
  EXPECT_EQ(R("{% for a, b in [('x', 1), ('y', 2)] %}{{ a }}{{ b }}{% endfor %}"), "x1y2");
  EXPECT_EQ(R("{% for x in range(10) if x is odd %}{{ x }}{{ loop.length }} {% endfor %}"), "15 35 55 75 95 ");
  EXPECT_EQ(R("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "0134");
  EXPECT_EQ(R("{% for x in [3, 1, 2] | sort %}{{ x }}{% endfor %}"), "123");
}

TEST(ChatTemplate, ScopingAndNamespace) {
  // A set inside a loop does not leak out; a namespace attribute does.
  EXPECT_EQ(R("{% set n = 0 %}{% for x in [1, 2] %}{% set n = n + x %}{% endfor %}{{ n }}"), "0");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"), "3");
  EXPECT_EQ(R("{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}{{ ns['a'] }}"), "121");
  // if blocks do not open a scope.
  EXPECT_EQ(R("{% if true %}{% set y = 'in' %}{% endif %}{{ y }}"), "in");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(R("{% set t %}  block {{ 1 + 1 }}  {% endset %}[{{ t }}]"), "[  block 2  ]");
  EXPECT_EQ(R("{% set t | trim | upper %}  block  {% endset %}[{{ t }}]"), "[BLOCK]");
  // Context variables can be shadowed.
  EXPECT_EQ(R("{% set x = 'new' %}{{ x }}", {{"x", "old"}}), "new");
}

TEST(ChatTemplate, Macros) {
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
              "{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}"),
            "Hi A! Hi B? Hi C.");
  EXPECT_EQ(R("{% macro f() %}{{ varargs | length }}{{ kwargs.k }}{% endmacro %}{{ f(1, 2, k='v') }}"), "2v");
  EXPECT_EQ(R("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
              "{% call wrap('b') %}bold{% endcall %}"),
            "<b>bold</b>");
  EXPECT_EQ(R("{% macro list(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
              "{% call(x) list([1, 2]) %}({{ x }}){% endcall %}"),
            "(1)(2)");
  // Recursion works up to the depth limit.
  EXPECT_EQ(R("{% macro down(n) %}{{ n }}{% if n > 0 %}{{ down(n - 1) }}{% endif %}{% endmacro %}{{ down(3) }}"), "3210");
  // Macros see the globals of the template.
  EXPECT_EQ(R("{% macro m() %}{{ g }}{% endmacro %}{{ m() }}", {{"g", "global"}}), "global");
}

TEST(ChatTemplate, FilterAndGenerationBlocks) {
  EXPECT_EQ(R("{% filter upper %}abc{% endfilter %}"), "ABC");
  EXPECT_EQ(R("{%- filter trim -%}  \n x \n {%- endfilter -%}"), "x");
  EXPECT_EQ(R("a{% generation %}b{% endgeneration %}c"), "abc");
}

// ---- tests, filters, methods ---------------------------------------------------

TEST(ChatTemplate, Tests) {
  json ctx = {{"s", "x"}, {"n", 3}, {"f", 1.5}, {"l", {1}}, {"d", {{"a", 1}}}, {"z", nullptr}, {"b", true}};
  EXPECT_EQ(R("{{ s is defined }}{{ q is defined }}{{ q is undefined }}{{ z is none }}{{ s is not none }}", ctx),
            "truefalsetruetruetrue");
  EXPECT_EQ(R("{{ s is string }}{{ n is string }}{{ d is mapping }}{{ l is mapping }}{{ l is iterable }}{{ s is iterable }}", ctx),
            "truefalsetruefalsetruetrue");
  EXPECT_EQ(R("{{ n is number }}{{ f is number }}{{ n is integer }}{{ f is float }}{{ s is number }}", ctx),
            "truetruetruetruefalse");
  EXPECT_EQ(R("{{ l is sequence }}{{ b is boolean }}{{ b is true }}{{ b is false }}{{ n is odd }}{{ n is even }}", ctx),
            "truetruetruefalsetruefalse");
  EXPECT_EQ(R("{{ 9 is divisibleby(3) }}{{ 9 is divisibleby 4 }}{{ 'x' is eq('x') }}{{ 'A' is upper }}{{ 'a' is lower }}"),
            "truefalsetruetruetrue");
  EXPECT_EQ(R("{{ range is callable }}{{ 2 is in [1, 2] }}{{ 3 is gt 2 }}"), "truetruetrue");
}

TEST(ChatTemplate, StringFiltersOnOtherValues) {
  // As in Jinja2, string filters work on str(value); undefined is "".
  EXPECT_EQ(R("[{{ missing | trim }}][{{ 5 | upper }}][{{ none | lower }}][{{ true | upper }}]"), "[][5][none][TRUE]");
}

TEST(ChatTemplate, StringFilters) {
  EXPECT_EQ(R("[{{ '  a b \n' | trim }}]{{ 'ab' | upper }}{{ 'AB' | lower }}{{ 'hello wORLD' | title }}{{ 'hELLO' | capitalize }}"),
            "[a b]ABabHello WorldHello");
  EXPECT_EQ(R("{{ '\xC3\xA9t\xC3\xA9' | upper }}"), "\xC3\x89T\xC3\x89");
  EXPECT_EQ(R("{{ 'aaa' | replace('a', 'b') }} {{ 'aaa' | replace('a', 'b', 2) }}"), "bbb bba");
  EXPECT_EQ(R("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(first=true, blank=true) }}"),
            "a\n  b\n\n  c|  a\n  b|    a\n    \n    b");
  EXPECT_EQ(R("{{ 'one two  three' | wordcount }} {{ '<a>' | e }} {{ 'x' | safe }} {{ 42 | string }}{{ [1] | string }}"),
            "3 &lt;a&gt; x 42[1]");
  EXPECT_EQ(R("{{ 'abc' | length }} {{ 'abc' | count }} {{ 'abc' | first }}{{ 'abc' | last }} {{ 'abc' | reverse }} {{ 'abc' | list }}"),
            "3 3 ac cba [\"a\", \"b\", \"c\"]");
  EXPECT_EQ(R("[{{ 'x' | center(5) }}]"), "[  x  ]");
  EXPECT_EQ(R("{{ '%s is %d years, %.2f%%' | format('Al', 30, 1.5) }}|{{ '%-4s|%5s' % ('ab', 'c') }}|{{ 'n=%s' % 3 }}|{{ '%.2s' % 'xyz' }}"),
            "Al is 30 years, 1.50%|ab  |    c|n=3|xy");
}

TEST(ChatTemplate, NumberFilters) {
  EXPECT_EQ(R("{{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ true | int }}"),
            "42 4 0 7 3 1");
  EXPECT_EQ(R("{{ '1.5' | float }} {{ 2 | float }} {{ 'x' | float }} {{ -3 | abs }} {{ -2.5 | abs }}"), "1.5 2.0 0.0 3 2.5");
  EXPECT_EQ(R("{{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }}"),
            "2.57 2.0 3.0 2.0");
  EXPECT_EQ(R("{{ [1, 2, 3] | sum }} {{ [1, 2.5] | sum }} {{ [{'v': 2}, {'v': 3}] | sum(attribute='v') }} {{ [] | sum(start=5) }}"),
            "6 3.5 5 5");
  EXPECT_EQ(R("{{ [3, 1, 2] | max }} {{ [3, 1, 2] | min }} {{ ['b', 'A', 'c'] | max }} {{ [] | max }}"), "3 1 c ");
}

TEST(ChatTemplate, SequenceFilters) {
  json ctx = {{"users", {{{"name", "bo"}, {"age", 30}, {"admin", true}},
                         {{"name", "al"}, {"age", 20}, {"admin", false}},
                         {{"name", "cy"}, {"age", 25}}}}};
  EXPECT_EQ(R("{{ users | map(attribute='name') | join(', ') }}", ctx), "bo, al, cy");
  EXPECT_EQ(R("{{ users | map(attribute='admin', default='?') | list }}", ctx), "[true, false, \"?\"]");
  EXPECT_EQ(R("{{ users | selectattr('admin') | map(attribute='name') | join }}", ctx), "bo");
  EXPECT_EQ(R("{{ users | rejectattr('admin') | map(attribute='name') | join }}", ctx), "alcy");
  EXPECT_EQ(R("{{ users | selectattr('admin', 'defined') | list | length }}", ctx), "2");
  EXPECT_EQ(R("{{ users | selectattr('name', 'equalto', 'cy') | map(attribute='age') | first }}", ctx), "25");
  EXPECT_EQ(R("{{ users | sort(attribute='age') | map(attribute='name') | join }}", ctx), "alcybo");
  EXPECT_EQ(R("{{ users | sort(attribute='age', reverse=true) | map(attribute='name') | join }}", ctx), "bocyal");
  EXPECT_EQ(R("{{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('odd') | list }} {{ [0, 1, ''] | select | list }}"),
            "[1, 3] [2, 4] [1]");
  EXPECT_EQ(R("{{ ['a', 'b', 'A', 'a'] | unique | list }} {{ ['b', 'a', 'C'] | sort }} {{ ['b', 'a', 'C'] | sort(case_sensitive=true) }}"),
            "[\"a\", \"b\"] [\"a\", \"b\", \"C\"] [\"C\", \"a\", \"b\"]");
  EXPECT_EQ(R("{{ none | selectattr('type') | list }}{{ none | map(attribute='x') | list }}{{ none | reject | list }}"), "[][][]");
  EXPECT_EQ(R("{{ [1, 2, 3] | reverse | list }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ [1, 2, 3] | length }}"),
            "[3, 2, 1] 1 3 3");
  EXPECT_EQ(R("{{ [1, 2, 3] | join('-') }} {{ [' a', 'b '] | map('trim') | join }} {{ [1, 2, 3, 4, 5] | batch(2) | list }}"),
            "1-2-3 ab [[1, 2], [3, 4], [5]]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | dictsort }} {{ {'b': 1, 'a': 2} | items | list }}"),
            "[[\"a\", 2], [\"b\", 1]] [[\"b\", 1], [\"a\", 2]]");
}

TEST(ChatTemplate, DefaultFilter) {
  EXPECT_EQ(R("{{ x | default('d') }} {{ x | d('e') }} [{{ '' | default('f') }}] {{ '' | default('g', true) }} {{ 0 | default(5) }}"),
            "d e [] g 0");
  EXPECT_EQ(R("{{ none | default('n') }}|{{ x | default }}|"), "|" "|");
}

TEST(ChatTemplate, ToJson) {
  json ctx = {{"v", {{"name", "t\xC3\xA9st \"q\" \\ \n"}, {"n", 1}, {"f", 2.5}, {"l", {true, nullptr}}, {"e", json::object()}}}};
  EXPECT_EQ(R("{{ v | tojson }}", ctx),
            "{\"name\": \"t\xC3\xA9st \\\"q\\\" \\\\ \\n\", \"n\": 1, \"f\": 2.5, \"l\": [true, null], \"e\": {}}");
  EXPECT_EQ(R("{{ v.l | tojson(indent=2) }}", ctx), "[\n  true,\n  null\n]");
  EXPECT_EQ(R("{{ {'b': 1, 'a': {'c': []}} | tojson(indent=2) }}"), "{\n  \"b\": 1,\n  \"a\": {\n    \"c\": []\n  }\n}");
  EXPECT_EQ(R("{{ v.name | tojson(ensure_ascii=true) }}", ctx), "\"t\\u00e9st \\\"q\\\" \\\\ \\n\"");
  EXPECT_EQ(R("{{ '\xF0\x9F\x98\x80' | tojson(ensure_ascii=true) }}"), "\"\\ud83d\\ude00\"");
  EXPECT_EQ(R("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
  EXPECT_EQ(R("{{ {'a': [1, 2]} | tojson(separators=(',', ':')) }}"), "{\"a\":[1,2]}");
  EXPECT_EQ(R("{{ 1.0 | tojson }} {{ '\x01' | tojson }}"), "1 \"\\u0001\"");
}

TEST(ChatTemplate, Methods) {
  json ctx = {{"d", {{"a", 1}, {"b", 2}}}};
  EXPECT_EQ(R("[{{ '  x  '.strip() }}][{{ '  x  '.lstrip() }}][{{ '  x  '.rstrip() }}][{{ 'xxaxx'.strip('x') }}]"),
            "[x][x  ][  x][a]");
  EXPECT_EQ(R("{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }}"),
            "[\"a\", \"b\", \"c\"] [\"a\", \"b\", \"\", \"c\"] [\"a\", \"b,c\"] [\"a,b\", \"c\"]");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith('bc') }}{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('x') }}"),
            "truetruetruefalse");
  EXPECT_EQ(R("{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}{{ 'ab cd'.title() }}{{ 'aXa'.replace('a', 'b') }}{{ 'ab'.capitalize() }}"),
            "ABabAb CdbXbAb");
  EXPECT_EQ(R("{{ 'abcb'.find('b') }} {{ 'abcb'.rfind('b') }} {{ 'abcb'.count('b') }} {{ '-'.join(['a', 'b']) }}"), "1 3 2 a-b");
  EXPECT_EQ(R("{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }}", ctx),
            "[\"a\", \"b\"] [1, 2] [[\"a\", 1], [\"b\", 2]]");
  EXPECT_EQ(R("{{ d.get('a') }} {{ d.get('z', 'dflt') }} [{{ d.get('z') }}]", ctx), "1 dflt []");
  EXPECT_EQ(R("{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}{{ l.pop() }}{{ l }}"), "[1, 2]2[1]");
  EXPECT_EQ(R("{% set l = [] %}{% for x in range(3) %}{% set _ = l.append(x) %}{% endfor %}{{ l }}"), "[0, 1, 2]");
}

TEST(ChatTemplate, Globals) {
  EXPECT_EQ(R("{{ range(3) }} {{ range(1, 4) }} {{ range(5, 0, -2) }} {{ range(0) }}"), "[0, 1, 2] [1, 2, 3] [5, 3, 1] []");
  EXPECT_EQ(R("{{ dict(a=1, b='x') | tojson }} {{ dict([['k', 2]]) | tojson }}"), "{\"a\": 1, \"b\": \"x\"} {\"k\": 2}");
  ::setenv("TZ", "UTC", 1);
  ::tzset();
  RenderOptions o;
  o.now = 1721995200;  // 2024-07-26 12:00:00 UTC
  EXPECT_EQ(R("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%Y-%m-%d %H:%M') }}", json::object(), o),
            "26 Jul 2024 2024-07-26 12:00");
  // Context values shadow builtins.
  EXPECT_EQ(R("{{ range }}", {{"range", "mine"}}), "mine");
}

TEST(ChatTemplate, DataIsNotMutatedAcrossRenders) {
  Template t("{% set _ = xs.append(1) %}{{ xs | length }}", "t");
  json ctx = {{"xs", json::array()}};
  EXPECT_EQ(t.render(ctx), "1");
  EXPECT_EQ(t.render(ctx), "1");
}

// ---- chat helpers and real templates ---------------------------------------------

TEST(ChatTemplate, RenderChatAndChatMl) {
  Template chatml(hai::chat::kChatMlTemplate, "chatml");
  json msgs = json::array({{{"role", "system"}, {"content", "S"}}, {{"role", "user"}, {"content", "U"}}});
  EXPECT_EQ(hai::chat::render_chat(chatml, msgs, nullptr, true, "<s>", "</s>"),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(hai::chat::render_chat(chatml, msgs, nullptr, false, "", ""),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
  Template t("{{ bos_token }}{{ tools | length }}{{ add_generation_prompt }}{{ eos_token }}{{ extra_key }}", "t");
  EXPECT_EQ(hai::chat::render_chat(t, json::array(), json::array({1, 2}), true, "B", "E", {{"extra_key", "X"}}),
            "B2trueEX");
  EXPECT_THROW(hai::chat::render_chat(t, json::object(), nullptr, false, "", ""), hai::Error);
  EXPECT_THROW(hai::chat::render_chat(t, json::array(), json::object(), false, "", ""), hai::Error);
  EXPECT_THROW(hai::chat::render_chat(t, json::array(), nullptr, false, "", "", json::array()), hai::Error);
}

TEST(ChatTemplate, QwenFixtureWithTools) {
  std::string src = hai::test::read_file(hai::test::fixture("templates/Qwen-Qwen2.5-7B-Instruct.jinja"));
  ASSERT_FALSE(src.empty());
  Template t(src, "qwen");
  json tools = json::array({{{"type", "function"},
                             {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  json msgs = json::array({{{"role", "user"}, {"content", "Weather?"}},
                           {{"role", "assistant"},
                            {"content", ""},
                            {"tool_calls", json::array({{{"type", "function"},
                                                         {"function", {{"name", "get_weather"}, {"arguments", {{"city", "Paris"}}}}}}})}},
                           {{"role", "tool"}, {"content", "sunny"}}});
  std::string out = hai::chat::render_chat(t, msgs, tools, true, "", "<|im_end|>");
  EXPECT_NE(out.find("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}\n</tools>"),
            std::string::npos) << out;
  EXPECT_NE(out.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"),
            std::string::npos) << out;
  EXPECT_NE(out.find("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"),
            std::string::npos) << out;
}

TEST(ChatTemplate, EveryFixtureTemplateParses) {
  const char* names[] = {"CohereForAI-c4ai-command-r-plus-tool_use.jinja", "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
                         "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
                         "Qwen-Qwen2.5-7B-Instruct.jinja", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
                         "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "fireworks-ai-llama-3-firefunction-v2.jinja",
                         "google-gemma-2-2b-it.jinja", "meetkai-functionary-medium-v3.1.jinja", "meetkai-functionary-medium-v3.2.jinja",
                         "meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
                         "meta-llama-Llama-3.3-70B-Instruct.jinja", "microsoft-Phi-3.5-mini-instruct.jinja",
                         "mistralai-Mistral-Nemo-Instruct-2407.jinja"};
  for (const char* n : names) {
    std::string src = hai::test::read_file(hai::test::fixture(std::string("templates/") + n));
    ASSERT_FALSE(src.empty()) << n;
    EXPECT_NO_THROW(Template(src, n)) << n;
  }
}

// ---- errors ------------------------------------------------------------------------

TEST(ChatTemplateErrors, SyntaxErrorsNameTheLine) {
  EXPECT_ERROR(E("a\n{{ x "), "t:2: syntax error: unclosed expression");
  EXPECT_ERROR(E("a\nb\n{% if x %}"), "t:3: syntax error: unexpected end of template, expected 'elif' or 'else' or 'endif'");
  EXPECT_ERROR(E("{% for x in y %}{% endif %}"), "t:1: syntax error: unexpected 'endif'");
  EXPECT_ERROR(E("\n{% frobnicate %}"), "t:2: syntax error: unknown tag 'frobnicate'");
  EXPECT_ERROR(E("{{ 1 + }}"), "syntax error: unexpected '}}' in expression");
  EXPECT_ERROR(E("{{ a b }}"), "syntax error: expected '}}'");
  EXPECT_ERROR(E("{{ 'unterminated }}"), "unterminated string literal");
  EXPECT_ERROR(E("{# never closed"), "unclosed comment");
  EXPECT_ERROR(E("{{ x ? y }}"), "unexpected character '?'");
  EXPECT_ERROR(E("{% break %}"), "'break' outside of a for loop");
  EXPECT_ERROR(E("{% raw %}abc"), "unclosed {% raw %}");
  EXPECT_ERROR(E("{% macro m(a, a) %}{% endmacro %}"), "duplicate parameter 'a'");
  EXPECT_ERROR(E("{{ f(a=1, 2) }}"), "positional argument after keyword argument");
  EXPECT_ERROR(E("{{ 99999999999999999999 }}"), "integer literal out of range");
  EXPECT_ERROR(E("{% set x.y %}{% endset %}"), "a block set needs a single variable name");
}

TEST(ChatTemplateErrors, UnknownFilterOrTestAtParseTime) {
  // Found while parsing, even in a branch that would never run.
  EXPECT_ERROR(E("ok\n{% if false %}{{ x | no_such_filter }}{% endif %}"), "t:2: syntax error: no filter named 'no_such_filter'");
  EXPECT_ERROR(E("{{ x is frobbed }}"), "t:1: syntax error: no test named 'frobbed'");
  EXPECT_ERROR(E("{{ [1] | select('nope') | list }}"), "no test named 'nope'");
  EXPECT_ERROR(E("{{ [1] | map('nope') | list }}"), "no filter named 'nope'");
}

TEST(ChatTemplateErrors, RaiseException) {
  EXPECT_ERROR(E("line1\n{{ raise_exception('Roles must alternate') }}"), "t:2: template raised an exception: Roles must alternate");
  EXPECT_ERROR(E("{% if messages | length == 0 %}{{ raise_exception('empty') }}{% endif %}", {{"messages", json::array()}}),
               "empty");
}

TEST(ChatTemplateErrors, RuntimeTypeErrors) {
  EXPECT_ERROR(E("\n\n{{ undefined_var + 1 }}"), "t:3: undefined value in '+'");
  EXPECT_ERROR(E("{{ nothing() }}"), "'nothing' is not a function");
  EXPECT_ERROR(E("{{ 1 / 0 }}"), "division by zero");
  EXPECT_ERROR(E("{{ 1 // 0 }}"), "integer division by zero");
  EXPECT_ERROR(E("{{ 1 - 'a' }}"), "unsupported operand types for -");
  EXPECT_ERROR(E("{{ 1 < 'a' }}"), "'<' not supported between integer and string");
  EXPECT_ERROR(E("{{ 9223372036854775807 + 1 }}"), "integer overflow");
  EXPECT_ERROR(E("{% for x in 5 %}{% endfor %}"), "cannot loop over a integer");
  EXPECT_ERROR(E("{% for a, b in [1] %}{% endfor %}"), "cannot unpack");
  EXPECT_ERROR(E("{% set d = {} %}{% set d.x = 1 %}"), "cannot assign attribute 'x' on a dict");
  EXPECT_ERROR(E("{{ range | upper }}"), "filter 'upper' needs a string, got a callable");
  EXPECT_ERROR(E("{{ [1] | batch(0) }}"), "filter 'batch' needs a positive size");
  EXPECT_ERROR(E("{{ 'x' | round }}"), "filter 'round' needs a number, got string");
  EXPECT_ERROR(E("{{ 5 | items }}"), "filter 'items' needs a mapping, got integer");
  EXPECT_ERROR(E("{{ 5 | join }}"), "filter 'join' needs a sequence, got integer");
  EXPECT_ERROR(E("{{ [1, 'a'] | sort }}"), "cannot compare string with integer");
  EXPECT_ERROR(E("{{ '%s %s' | format(1) }}"), "not enough arguments for format string");
  EXPECT_ERROR(E("{{ '%s' % (1, 2) }}"), "not all arguments converted");
  EXPECT_ERROR(E("{{ '%d' % 'x' }}"), "%d format needs a number, not string");
  EXPECT_ERROR(E("{{ '%q' % 1 }}"), "unsupported format character 'q'");
  EXPECT_ERROR(E("{{ 'abc %' % 1 }}"), "incomplete format");
  EXPECT_ERROR(E("{{ 'abc'.nosuch() }}"), "has no method 'nosuch'");
  EXPECT_ERROR(E("{{ [1, 2][::0] }}"), "slice step cannot be zero");
  EXPECT_ERROR(E("{{ range(1, 2, 0) }}"), "range() step must not be zero");
  EXPECT_ERROR(E("{{ 'a'.split('') }}"), "empty separator");
  EXPECT_ERROR(E("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"), "takes at most 1 argument");
  EXPECT_ERROR(E("{% macro m(a) %}{% endmacro %}{{ m(b=2) }}"), "takes no keyword argument 'b'");
  EXPECT_ERROR(E("{{ {1: 2} }}"), "dict keys must be strings");
  EXPECT_ERROR(E("{{ range | tojson }}"), "a callable cannot be converted to JSON");
}

TEST(ChatTemplateErrors, InvalidInput) {
  EXPECT_ERROR(E("ok\n\xFF\xFE"), "t:2: template is not valid UTF-8 (byte offset 3)");
  EXPECT_ERROR(E("{{ x }}", json::array({1})), "the render context must be a JSON object");
  json deep = json::array();
  for (int i = 0; i < 2000; ++i) deep = json::array({std::move(deep)});
  EXPECT_ERROR(E("{{ x | length }}", {{"x", deep}}), "context JSON nested too deeply");
}

TEST(ChatTemplateErrors, SelfContainingValuesAreRefused) {
  EXPECT_ERROR(E("{% set l = [] %}{% set _ = l.append(l) %}"), "a list cannot contain itself");
  EXPECT_ERROR(E("{% set l = [1] %}{% set m = [l] %}{% set _ = l.append(m) %}"), "a list cannot contain itself");
  EXPECT_ERROR(E("{% set ns = namespace() %}{% set ns.me = [ns] %}"), "a namespace cannot contain itself");
  EXPECT_ERROR(E("{% set d = {} %}{% set _ = d.update(x=[d]) %}"), "a dict cannot contain itself");
  // Appending a copy-free value that is merely equal is fine.
  EXPECT_EQ(R("{% set l = [1] %}{% set _ = l.append([1]) %}{{ l }}"), "[1, [1]]");
}

TEST(ChatTemplateErrors, ResourceLimits) {
  // Unbounded recursion stops at the depth limit instead of overflowing the stack.
  EXPECT_ERROR(E("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), "maximum macro recursion depth (200) exceeded");
  // A huge loop stops at the step limit.
  RenderOptions few;
  few.max_steps = 10000;
  EXPECT_ERROR(E("{% for i in range(100000) %}{{ i }}{% endfor %}", json::object(), few), "exceeded the limit of 10000 steps");
  EXPECT_ERROR(E("{{ range(10000000) | length }}"), "range() would produce more than 1000000 items");
  // Output growth stops at the size limit.
  RenderOptions small;
  small.max_output = 1000;
  EXPECT_ERROR(E("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}", json::object(), small), "output exceeded the limit of 1000 bytes");
  EXPECT_ERROR(E("{{ 'x' * 100000000000 }}"), "repetition result too large");
  // Deeply nested source is refused by the parser.
  std::string deep = "{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}";
  EXPECT_ERROR(E(deep), "nested too deeply");
  std::string deep_if;
  for (int i = 0; i < 1000; ++i) deep_if += "{% if true %}";
  EXPECT_ERROR(E(deep_if), "nested too deeply");
  // Long left-leaning chains are trees too: a+a+a+..., x|trim|trim|..., a.b.c.d...
  std::string sum = "{{ 1";
  for (int i = 0; i < 100000; ++i) sum += " + 1";
  EXPECT_ERROR(E(sum + " }}"), "expression nested too deeply");
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 5000; ++i) filters += " | trim";
  EXPECT_ERROR(E(filters + " }}"), "expression nested too deeply");
  std::string attrs = "{{ a";
  for (int i = 0; i < 5000; ++i) attrs += ".b";
  EXPECT_ERROR(E(attrs + " }}"), "expression nested too deeply");
  // ... while realistic lengths are fine.
  std::string ok = "{{ 0";
  for (int i = 0; i < 300; ++i) ok += " + 1";
  EXPECT_EQ(R(ok + " }}"), "300");
}

TEST(ChatTemplateErrors, MangledTemplatesNeverCrash) {
  // Every prefix of a real template, and byte flips in it, either render or
  // fail with hai::Error: no crash, no hang, no other exception.
  std::string src = hai::test::read_file(hai::test::fixture("templates/meetkai-functionary-medium-v3.2.jinja"));
  ASSERT_GT(src.size(), 1000u);
  json ctx = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}, {"tools", json::array()}};
  int errors = 0, renders = 0;
  auto attempt = [&](const std::string& s) {
    try {
      Template(s, "m").render(ctx);
      ++renders;
    } catch (const hai::Error&) {
      ++errors;
    }
  };
  for (size_t cut = 0; cut < src.size(); cut += 7) attempt(src.substr(0, cut));
  uint32_t seed = 12345;
  const char noise[] = "{}%#-+()[]'\"|.,:~ \nxif";
  for (int i = 0; i < 600; ++i) {
    std::string m = src;
    for (int k = 0; k < 3; ++k) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % m.size();
      seed = seed * 1103515245u + 12345u;
      m[pos] = noise[(seed >> 8) % (sizeof noise - 1)];
    }
    attempt(m);
  }
  EXPECT_GT(errors, 0);
  EXPECT_GT(renders, 0);
}
