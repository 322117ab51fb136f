#include "modgraph/context/context.h"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace modgraph {
namespace {

const Key<int> kNumber;
const Key<std::string> kName;

TEST(ContextTest, NothingIsCurrentOutsideAnyScope) {
  EXPECT_TRUE(current().empty());
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, RunInstallsTheContextAndReturnsTheResult) {
  const int result = run(with(kNumber, 7), [] {
    const int* number = get(kNumber);
    return number == nullptr ? -1 : *number * 6;
  });
  EXPECT_EQ(result, 42);
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, NestedScopesRestoreTheirParent) {
  run(with(kNumber, 1), [] {
    run(with(kNumber, 2), [] {
      ASSERT_NE(get(kNumber), nullptr);
      EXPECT_EQ(*get(kNumber), 2);
    });
    ASSERT_NE(get(kNumber), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
  });
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, ExceptionRestoresThePreviousContext) {
  run(with(kNumber, 1), [] {
    EXPECT_THROW(run(with(kNumber, 2), []() -> int { throw std::runtime_error("boom"); }),
                 std::runtime_error);
    ASSERT_NE(get(kNumber), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
  });
  EXPECT_TRUE(current().empty());
}

TEST(ContextTest, ChildReplacesValuesWithoutMutatingTheParent) {
  const Context parent = Context().with(kNumber, 1).with(kName, std::string("parent"));
  const Context child = parent.with(kNumber, 2);
  ASSERT_NE(parent.get(kNumber), nullptr);
  EXPECT_EQ(*parent.get(kNumber), 1);
  EXPECT_EQ(*child.get(kNumber), 2);
  ASSERT_NE(child.get(kName), nullptr);
  EXPECT_EQ(*child.get(kName), "parent");  // inherited
}

TEST(ContextTest, ChildOutlivesItsParentHandle) {
  Context child;
  {
    const Context parent = Context().with(kName, std::string("kept alive"));
    child = parent.with(kNumber, 3);
  }
  ASSERT_NE(child.get(kName), nullptr);
  EXPECT_EQ(*child.get(kName), "kept alive");
}

TEST(ContextTest, BindCarriesTheContextIntoALaterCallback) {
  auto callback =
      run(with(kNumber, 5), [] { return bind([](int add) { return *get(kNumber) + add; }); });
  EXPECT_EQ(get(kNumber), nullptr);
  EXPECT_EQ(callback(1), 6);
  EXPECT_EQ(get(kNumber), nullptr);
}

TEST(ContextTest, SnapshotIsTheCurrentContext) {
  const Context outer = with(kNumber, 9);
  const Context captured = run(outer, [] { return snapshot(); });
  EXPECT_EQ(captured, outer);
  EXPECT_TRUE(snapshot().empty());
}

TEST(ContextTest, NamedKeysShareOneSlotAcrossDeclarations) {
  // Two declarations of one name stand for the same key in two module copies.
  const Key<int> first("test.context.shared");
  const Key<int> second("test.context.shared");
  EXPECT_EQ(first.index(), second.index());
  run(with(first, 11), [&] {
    ASSERT_NE(get(second), nullptr);
    EXPECT_EQ(*get(second), 11);
  });
}

TEST(ContextTest, NamedKeyWithAnotherTypeFailsLoudly) {
  const Key<int> first("test.context.typed");
  try {
    const Key<double> second("test.context.typed");
    FAIL() << "registering a key name with another type must throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("test.context.typed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("double"), std::string::npos) << e.what();
  }
}

// run() borrows its context; if the body drops the last reference, the context
// dies while installed. The anchor must not be left pointing at freed memory.
TEST(ContextTest, DroppingTheLastReferenceInsideItsScopeClearsTheAnchor) {
  Context ctx = Context().with(kNumber, 5);
  const int* seen_after = &*ctx.get(kNumber);
  run(ctx, [&] {
    ASSERT_NE(get(kNumber), nullptr);
    ctx = Context();  // the last reference: the context is destroyed here
    seen_after = get(kNumber);
  });
  EXPECT_EQ(seen_after, nullptr);
  EXPECT_TRUE(current().empty());
}

TEST(ContextTest, ReleasingALongChainDoesNotRecurse) {
  Context ctx;
  for (int i = 0; i < 200000; ++i) ctx = ctx.with(kNumber, i);
  ASSERT_NE(ctx.get(kNumber), nullptr);
  EXPECT_EQ(*ctx.get(kNumber), 199999);
  ctx = Context();  // would overflow the stack if release recursed
  EXPECT_TRUE(ctx.empty());
}

// --- Node's AsyncLocalStorage, the rest of the API: exit (run_without), a
// default value, disable, and a scope guard (enterWith with an end). ---

// asyncLocalStorage.exit(fn): the store is not visible inside fn, nor in work
// fn hands on; other stores are; it is back after fn, also after a throw.
TEST(ContextApiTest, RunWithoutHidesOneKeyInsideAndInWorkHandedOn) {
  std::function<const int*()> later;
  run(with(kNumber, 1).with(kName, std::string("kept")), [&] {
    run_without(kNumber, [&] {
      EXPECT_EQ(get(kNumber), nullptr);
      ASSERT_NE(get(kName), nullptr);
      EXPECT_EQ(*get(kName), "kept");
      later = bind([] { return get(kNumber); });
      run(with(kNumber, 2), [] { EXPECT_EQ(*get(kNumber), 2); });  // may set it again
    });
    ASSERT_NE(get(kNumber), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
    EXPECT_THROW(run_without(kNumber, []() -> int { throw std::runtime_error("x"); }),
                 std::runtime_error);
    EXPECT_EQ(*get(kNumber), 1);
  });
  EXPECT_EQ(later(), nullptr);
}

// Node's exit-does-not-leak: alternating run and exit a hundred deep costs a
// context per level and unwinds completely.
TEST(ContextApiTest, NestedRunAndRunWithoutUnwindCompletely) {
  std::function<void(int)> nest = [&](int depth) {
    if (depth == 0) return;
    run(with(kNumber, depth), [&] {
      EXPECT_EQ(*get(kNumber), depth);
      run_without(kNumber, [&] {
        EXPECT_EQ(get(kNumber), nullptr);
        nest(depth - 1);
      });
    });
  };
  nest(100);
  EXPECT_TRUE(current().empty());
}

// new AsyncLocalStorage({defaultValue}): the default outside any scope and
// wherever the key is unset; a value set wins.
TEST(ContextApiTest, KeyWithADefaultReadsItWhereverItIsUnset) {
  const Key<std::string> locale("test.context.locale", "en");
  const Key<int> anonymous({}, 42);
  ASSERT_NE(get(locale), nullptr);
  EXPECT_EQ(*get(locale), "en");
  EXPECT_EQ(*get(anonymous), 42);
  run(with(locale, std::string("fr")), [&] {
    EXPECT_EQ(*get(locale), "fr");
    run_without(locale, [&] { EXPECT_EQ(*get(locale), "en"); });
    EXPECT_EQ(*current().get(locale), "fr");
  });
  EXPECT_EQ(*Context().get(locale), "en");
  EXPECT_EQ(get(kNumber), nullptr);  // no default: nullptr as before
}

// test-async-local-storage-enable-disable: after disable(), getStore() is
// undefined at once — in the current scope and in work already carrying it —
// exit() does not re-enable it, and a new run() does.
TEST(ContextApiTest, DisabledKeyIsUnsetEverywhereUntilSetAgain) {
  const Key<std::string> store("test.context.disable", "default");
  const Key<std::string> same_store("test.context.disable");  // another module's declaration
  std::function<std::string()> pending;
  run(with(store, std::string("bar")).with(kNumber, 5), [&] {
    pending = bind([&] { return *get(store); });
    EXPECT_EQ(pending(), "bar");
    store.disable();
    EXPECT_EQ(*get(store), "default");
    EXPECT_EQ(get(same_store), nullptr);  // the same slot, read with no default
    EXPECT_EQ(*get(kNumber), 5);          // other keys are untouched
    run_without(store, [&] { EXPECT_EQ(*get(store), "default"); });
    EXPECT_EQ(*get(store), "default");
    EXPECT_EQ(pending(), "default");
    run(with(store, std::string("foo")), [&] {
      EXPECT_EQ(*get(store), "foo");
      EXPECT_EQ(*get(same_store), "foo");
    });
  });
  EXPECT_EQ(pending(), "default");
  same_store.disable();  // through the other declaration
  EXPECT_EQ(run(with(store, std::string("again")), [&] { return *get(store); }), "again");
}

TEST(ContextApiTest, ScopeGuardInstallsUntilTheEndOfTheBlockAndNests) {
  {
    ContextScope outer(kNumber, 1);
    EXPECT_EQ(*get(kNumber), 1);
    {
      ContextScope inner(with(kName, std::string("inner")));
      EXPECT_EQ(*get(kNumber), 1);  // a child of the current context
      EXPECT_EQ(*get(kName), "inner");
      EXPECT_TRUE(inner.context() == current());
    }
    EXPECT_EQ(get(kName), nullptr);
    EXPECT_EQ(*get(kNumber), 1);
  }
  EXPECT_TRUE(current().empty());
}

TEST(ContextApiTest, ScopeGuardRestoresOnException) {
  run(with(kNumber, 1), [] {
    try {
      ContextScope scope(kNumber, 2);
      EXPECT_EQ(*get(kNumber), 2);
      throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
      EXPECT_EQ(*get(kNumber), 1);
    }
  });
}

// The guard keeps both contexts alive: a scope whose context was only held by
// the caller, and whose previous context the caller dropped meanwhile, still
// reads and restores without touching freed memory (ASan).
TEST(ContextApiTest, ScopeGuardHoldsItsContextAndThePreviousOne) {
  Context previous = Context().with(kName, std::string("previous"));
  std::optional<ContextScope> outer;
  outer.emplace(previous);
  previous = Context();  // only the guard holds it now
  {
    Context mine = Context().with(kNumber, 3);
    ContextScope scope(std::move(mine));
    EXPECT_EQ(*get(kNumber), 3);
  }
  EXPECT_EQ(*get(kName), "previous");
  outer.reset();
  EXPECT_TRUE(current().empty());
}

}  // namespace
}  // namespace modgraph
