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

void AppendFinding(std::string& out, const Report& report, const Finding& finding,
                   const Painter& paint) {
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
    const SlotRecord* slot = FindSlot(report, twin, finding.slot);
    if (slot != nullptr && !slot->provider.empty()) {
      out += fmt::format("  registered twin: {} (registration by {})\n", twin, slot->provider);
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

std::string SummaryLine(const Report& report, const Painter& paint) {
  const Summary& s = report.summary;
  std::string line;
  if (s.findings == 0) {
    line = fmt::format("{} {}: all {} have a registration ({}, {})",
                       s.dangling_providers == 0 ? paint.Green("summary:") : paint.Red("summary:"),
                       s.dangling_providers == 0 ? "clean" : "findings", Plural(s.slots, "slot"),
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
  for (const Finding& finding : report.findings) AppendFinding(out, report, finding, paint);
  for (const DanglingProvider& dangling : report.dangling_providers) {
    AppendDanglingProvider(out, dangling, paint);
  }
  for (const RetiredReport& retired : report.retired) {
    out += fmt::format("{} {} (was {}) is still mapped: {}\n", paint.Yellow("retired copy"),
                       retired.library.copy, fmt::join(retired.library.instances, ", "),
                       retired.library.reason);
  }
  out += SummaryLine(report, paint);
  return out;
}

}  // namespace modgraph::report
