// The doctor's text output; see render.h.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <string_view>

#include "modgraph/report/render.h"
#include "modgraph/report/report_util.h"

namespace modgraph::report {
namespace {

class Painter {
 public:
  explicit Painter(bool color) : color_(color) {}
  std::string Bold(std::string_view text) const { return Paint(text, "1"); }
  std::string Red(std::string_view text) const { return Paint(text, "1;31"); }
  std::string Green(std::string_view text) const { return Paint(text, "1;32"); }
  std::string Yellow(std::string_view text) const { return Paint(text, "33"); }

 private:
  std::string Paint(std::string_view text, std::string_view code) const {
    if (!color_) return std::string(text);
    return fmt::format("\x1b[{}m{}\x1b[0m", code, text);
  }
  bool color_;
};

std::string Plural(int n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

void AppendFinding(std::string& out, const Report& report, const ReportIndex& index,
                   const Finding& finding, const Painter& paint) {
  out += fmt::format(
      "{} {}: slot {} has no registration; it uses the module-level default, shared by every "
      "request in environment {}\n",
      paint.Red("finding:"), paint.Bold(finding.instance), paint.Bold(finding.slot),
      finding.environment);
  if (finding.registered_twins.empty()) {
    out += fmt::format("  registered twin: none (no other environment registers {} on {})\n",
                       finding.slot, finding.module);
  }
  for (const std::string& twin : finding.registered_twins) {
    const SlotRecord* slot = index.Slot(twin, finding.slot);
    if (slot != nullptr && !slot->provider_instance.empty()) {
      out += fmt::format("  registered twin: {} (registration by {})\n", twin,
                         slot->provider_instance);
    } else {
      out += fmt::format("  registered twin: {}\n", twin);
    }
  }
  if (finding.fixing_providers.empty()) {
    out += fmt::format(
        "  provider that would fix it: none declared for module {}; declare one under "
        "[providers] in the topology file\n",
        finding.module);
  } else {
    out += fmt::format(
        "  provider that would fix it: {} (import it in environment {}, or run with --policy "
        "auto)\n",
        fmt::join(finding.fixing_providers, ", "), finding.environment);
  }
  const EnvironmentReport* env = FindEnvironment(report, finding.environment);
  if (env != nullptr && env->policy == "strict") {
    out += "  policy strict: a request that reaches this slot fails\n";
  } else if (env != nullptr && env->policy == "auto") {
    out += "  policy auto did not register it: its provider failed to load (see the load errors)\n";
  }
}

void AppendDanglingProvider(std::string& out, const DanglingProvider& dangling,
                            const Painter& paint) {
  out += fmt::format(
      "{} provider {} is declared for module {} ({}), but no environment loads {}: it would never "
      "register anything\n  fix: correct the module id, load {} where it is used, or remove the "
      "declaration\n",
      paint.Red("finding:"), paint.Bold(dangling.provider), paint.Bold(dangling.target),
      dangling.declared_by, dangling.target, dangling.target);
}

// std::string as users write it, not as the ABI spells it.
std::string ReadableType(std::string type) {
  constexpr std::string_view kString =
      "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";
  for (std::size_t at = type.find(kString); at != std::string::npos; at = type.find(kString)) {
    type.replace(at, kString.size(), "std::string");
  }
  return type;
}

void AppendAnonymousKey(std::string& out, const AnonymousKey& key, const Painter& paint) {
  const std::string type = ReadableType(key.type);
  std::vector<std::string> indexes;
  for (std::uint32_t index : key.indexes) indexes.push_back(std::to_string(index));
  const std::string copies = fmt::format("{}", fmt::join(key.constructed_by, ", "));
  if (key.constructed_by.size() > 1) {
    out += fmt::format(
        "{} an anonymous context key of type {} is constructed by {} module copies in environment "
        "{}: {} (key indexes {}); each copy gets its own key, so a value one of them sets is not "
        "seen by the others — in a bundle they are one key, so dev and prod disagree\n",
        paint.Red("finding:"), paint.Bold(type), key.constructed_by.size(), key.environment, copies,
        fmt::join(indexes, ", "));
  } else {
    out += fmt::format(
        "{} an anonymous context key of type {} is constructed by {} in environment {} (key index "
        "{}): it is that copy's own; the same declaration in another module, or in a bundle, is "
        "another key\n",
        paint.Red("finding:"), paint.Bold(type), copies, key.environment, fmt::join(indexes, ", "));
  }
  out += fmt::format(
      "  fix: give the key a name, the same in every module that shares it: "
      "modgraph::Key<{}> kKey{{\"<module>.<what>\"}}; a named key is one key in every copy and "
      "keeps its index across reloads\n",
      type);
}

std::string SummaryLine(const Report& report, const Painter& paint) {
  const Summary& s = report.summary;
  std::string line;
  if (s.findings == 0) {
    const bool clean = s.dangling_providers == 0 && s.anonymous_keys == 0;
    line = fmt::format("{} {}: all {} have a registration ({}, {})",
                       clean ? paint.Green("summary:") : paint.Red("summary:"),
                       clean ? "clean" : "findings", Plural(s.slots, "slot"),
                       Plural(s.instances, "instance"), Plural(s.environments, "environment"));
  } else {
    line = fmt::format("{} {}: {} of {} have no registration, on {} in {} ({}, {})",
                       paint.Red("summary:"), Plural(s.findings, "finding"), s.findings,
                       Plural(s.slots, "slot"), Plural(s.instances_with_findings, "instance"),
                       Plural(s.environments_with_findings, "environment"),
                       Plural(s.instances, "instance"), Plural(s.environments, "environment"));
  }
  if (s.dangling_providers > 0) {
    line += fmt::format("; {} pointing at modules no environment loads",
                        Plural(s.dangling_providers, "provider declaration"));
  }
  if (s.anonymous_keys > 0) {
    line += fmt::format("; {} in module code", Plural(s.anonymous_keys, "anonymous context key"));
  }
  if (s.errors > 0) {
    line += fmt::format("; {} loading the topology", paint.Red(Plural(s.errors, "error")));
  }
  return line + "\n";
}

}  // namespace

std::string RenderText(const Report& report, const TextOptions& options) {
  const Painter paint(options.color);
  std::string out =
      fmt::format("topology {} ({}): {}, {}\n", paint.Bold(report.topology), report.origin,
                  Plural(static_cast<int>(report.environments.size()), "environment"),
                  Plural(static_cast<int>(report.instances.size()), "instance"));
  for (const EnvironmentReport& env : report.environments) {
    int slots = 0;
    int registered = 0;
    for (const InstanceRecord& instance : report.instances) {
      if (instance.environment != env.name) continue;
      for (const SlotRecord& slot : instance.slots) {
        ++slots;
        registered += slot.registered ? 1 : 0;
      }
    }
    const std::string state =
        registered == slots
            ? paint.Green("all registered")
            : paint.Yellow(fmt::format("{} on the module-level default", slots - registered));
    out += fmt::format("  environment {} ({}, policy {}): {}, {}, {}\n", paint.Bold(env.name),
                       env.mode, env.policy,
                       Plural(static_cast<int>(env.instances.size()), "instance"),
                       Plural(slots, "slot"), state);
  }
  for (const InstanceRecord& instance : report.instances) {
    for (const SharedStateRecord& state : instance.shared_state) {
      out += fmt::format("shared on purpose: {}: {} ({} bytes), not audited: {}\n",
                         paint.Bold(instance.instance), state.name, state.size, state.reason);
    }
  }
  const ReportIndex index(report);
  for (const Finding& finding : report.findings) AppendFinding(out, report, index, finding, paint);
  for (const DanglingProvider& dangling : report.dangling_providers) {
    AppendDanglingProvider(out, dangling, paint);
  }
  for (const AnonymousKey& key : report.anonymous_keys) AppendAnonymousKey(out, key, paint);
  for (const RetiredReport& retired : report.retired) {
    out += fmt::format("{} {} (was {}) is still mapped: {}\n", paint.Yellow("retired copy"),
                       retired.library.copy, fmt::join(retired.library.instances, ", "),
                       retired.library.reason);
  }
  out += SummaryLine(report, paint);
  return out;
}

}  // namespace modgraph::report
