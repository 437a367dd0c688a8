#include "store/testing/conformance.h"

#include <chrono>
#include <map>
#include <set>

#include "core/catalog.h"
#include "core/json_text.h"
#include "core/secretbox.h"
#include "store/counters.h"
#include "store/delivery_counters.h"
#include "store/testing/hold_writer.h"

namespace outbound::store::testing {
namespace {

// --- tenants and keys ---

TEST_P(StoreConformance, TenantsAndKeys) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  EXPECT_NE(a, b);
  Client ca = NewClient(a);
  R([&](Txn& tx) {
    auto t = tx.GetTenant(a).value();
    ASSERT_TRUE(t);
    EXPECT_EQ(t->name, "a");
    EXPECT_EQ(t->created_at, kT0);
    EXPECT_FALSE(tx.GetTenant(TenantId(999)).value());
  });

  std::vector<KeyId> keys;
  W([&](Txn& tx) {
    for (int i = 0; i < 5; ++i) {
      ApiKey k;
      k.tenant = a;
      k.kind = i == 4 ? KeyKind::kClient : KeyKind::kTenant;
      if (i == 4) k.client = ca.id;
      k.token_hash = "hash-" + std::to_string(i);
      k.prefix = "obt_abcdefgh";
      k.created_at = kT0 + i;
      auto made = tx.CreateApiKey(k).value();
      EXPECT_GT(made.id.value, 0);
      keys.push_back(made.id);
    }
    ApiKey kb;
    kb.tenant = b;
    kb.token_hash = "hash-b";
    kb.prefix = "obt_b";
    (void)tx.CreateApiKey(kb).value();
  });
  R([&](Txn& tx) {
    auto k = tx.FindApiKeyByHash("hash-4").value();
    ASSERT_TRUE(k);
    EXPECT_EQ(k->tenant, a);
    EXPECT_EQ(k->kind, KeyKind::kClient);
    EXPECT_EQ(k->client, ca.id);
    EXPECT_EQ(k->prefix, "obt_abcdefgh");
    EXPECT_FALSE(tx.FindApiKeyByHash("nope").value());

    auto p1 = tx.ListApiKeys(a, Page{2, std::nullopt}).value();
    ASSERT_EQ(p1.rows.size(), 2u);
    ASSERT_TRUE(p1.next);
    auto p2 = tx.ListApiKeys(a, Page{2, p1.next}).value();
    auto p3 = tx.ListApiKeys(a, Page{2, p2.next}).value();
    ASSERT_EQ(p3.rows.size(), 1u);
    EXPECT_FALSE(p3.next);
    EXPECT_EQ(p1.rows[0].id, keys[0]);
    EXPECT_EQ(p2.rows[1].id, keys[3]);
    EXPECT_EQ(p3.rows[0].id, keys[4]);
    EXPECT_EQ(tx.ListApiKeys(b, Page{}).value().rows.size(), 1u);
    // Exactly a full page: no next cursor.
    EXPECT_FALSE(tx.ListApiKeys(a, Page{5, std::nullopt}).value().next);
    auto bad = tx.ListApiKeys(a, Page{5, "not-a-cursor"});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().kind, ErrorKind::kInvalid);
  });
  W([&](Txn& tx) {
    EXPECT_FALSE(tx.RevokeApiKey(b, keys[0], kT0).value());  // another tenant's key
    EXPECT_TRUE(tx.RevokeApiKey(a, keys[0], kT0 + 5).value());
    EXPECT_FALSE(tx.RevokeApiKey(a, keys[0], kT0 + 6).value());  // already revoked
  });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.FindApiKeyByHash("hash-0").value());
    auto all = tx.ListApiKeys(a, Page{}).value();
    ASSERT_EQ(all.rows.size(), 5u);
    EXPECT_EQ(all.rows[0].revoked_at, kT0 + 5);
  });
}

// --- clients ---

TEST_P(StoreConformance, ClientsCrudAndIsolation) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c1 = NewClient(a, "erp");
  Client c2 = NewClient(a, "crm");
  Client cb = NewClient(b, "erp");
  R([&](Txn& tx) {
    auto got = tx.GetClient(a, c1.id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->source_system, "erp");
    EXPECT_FALSE(got->billing_details_allowed);
    EXPECT_FALSE(tx.GetClient(b, c1.id).value());  // tenant isolation
    auto list = tx.ListClients(a, Page{1, std::nullopt}).value();
    ASSERT_EQ(list.rows.size(), 1u);
    EXPECT_EQ(list.rows[0].id, c1.id);
    auto rest = tx.ListClients(a, Page{1, list.next}).value();
    ASSERT_EQ(rest.rows.size(), 1u);
    EXPECT_EQ(rest.rows[0].id, c2.id);
    EXPECT_FALSE(rest.next);
  });
  W([&](Txn& tx) {
    Client u = c1;
    u.name = "renamed";
    u.billing_details_allowed = true;
    EXPECT_TRUE(tx.UpdateClient(u).value());
    u.tenant = b;
    EXPECT_FALSE(tx.UpdateClient(u).value());
  });
  R([&](Txn& tx) {
    auto got = tx.GetClient(a, c1.id).value();
    EXPECT_EQ(got->name, "renamed");
    EXPECT_TRUE(got->billing_details_allowed);
  });

  // Deleting a client revokes its keys and deletes its subscriptions.
  Subscription s = NewSubscription(a, c1.id);
  Subscription keep = NewSubscription(a, c2.id);
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s.id, keep.id});
  W([&](Txn& tx) {
    ApiKey k;
    k.tenant = a;
    k.kind = KeyKind::kClient;
    k.client = c1.id;
    k.token_hash = "client-key";
    k.prefix = "obc_";
    (void)tx.CreateApiKey(k).value();
    ASSERT_TRUE(tx.ReleaseLeases(kPublisher, {jobs[0].id, jobs[1].id}).has_value());
  });
  W([&](Txn& tx) {
    EXPECT_FALSE(tx.DeleteClient(b, c1.id, kT0).value());
    EXPECT_TRUE(tx.DeleteClient(a, c1.id, kT0 + 10).value());
    EXPECT_FALSE(tx.DeleteClient(a, c1.id, kT0 + 11).value());
  });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.GetClient(a, c1.id).value());
    EXPECT_FALSE(tx.FindApiKeyByHash("client-key").value());
    EXPECT_FALSE(tx.GetSubscription(a, s.id).value());
    EXPECT_TRUE(tx.GetSubscription(a, keep.id).value());
    EXPECT_EQ(tx.ListClients(a, Page{}).value().rows.size(), 1u);
    auto fan = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(fan.size(), 1u);
    EXPECT_EQ(fan[0].first.id, keep.id);
    // Its deliveries are cancelled, the other client's are untouched; both stay visible.
    auto views = tx.GetDeliveries(a, jobs[0].event_id, std::nullopt).value();
    ASSERT_EQ(views.size(), 2u);
    EXPECT_EQ(views[0].status, DeliveryStatus::kCancelled);
    EXPECT_EQ(views[0].client, c1.id);
    EXPECT_EQ(views[1].status, DeliveryStatus::kPending);
    EXPECT_FALSE(tx.ClaimDue("o", kT0 + 1000, kT0 + 2000, 10)) << "a read cannot claim";
  });
  (void)cb;
}

// --- directory ---

TEST_P(StoreConformance, DirectoryUpsertGetDeleteAndConflicts) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Customer cu;
  cu.tenant = a;
  cu.id = 501;
  cu.customer_number = "C-1";
  cu.name = "Bakery";
  cu.internal_notes = "never shown";
  cu.external_ids = {{"erp", "K-1"}, {"crm", "crm-9"}};
  Location lo;
  lo.tenant = a;
  lo.id = 601;
  lo.customer_id = 501;
  lo.name = "Back door";
  lo.address = "Main St 1";
  lo.access_secret = "1234#";
  lo.external_ids = {{"erp", "L-1"}};
  Contact co;
  co.tenant = a;
  co.id = 701;
  co.customer_id = 501;
  co.display_name = "Ana";
  co.phone = "+49 1";
  co.email = "ana@example.com";
  co.external_ids = {{"erp", "P-1"}};
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.UpsertCustomer(cu).has_value());
    ASSERT_TRUE(tx.UpsertLocation(lo).has_value());
    ASSERT_TRUE(tx.UpsertContact(co).has_value());
    // The same external id in another kind or tenant is no conflict.
    Customer other = cu;
    other.tenant = b;
    ASSERT_TRUE(tx.UpsertCustomer(other).has_value());
    Contact c2 = co;
    c2.id = 702;
    c2.external_ids = {{"erp", "K-1"}};
    ASSERT_TRUE(tx.UpsertContact(c2).has_value());
  });
  R([&](Txn& tx) {
    auto c = tx.GetCustomer(a, 501).value();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->name, "Bakery");
    EXPECT_EQ(c->external_ids.size(), 2u);
    EXPECT_EQ(c->external_ids.at("crm"), "crm-9");
    auto l = tx.GetLocation(a, 601).value();
    ASSERT_TRUE(l);
    EXPECT_EQ(l->access_secret, "1234#");
    EXPECT_EQ(l->address, "Main St 1");
    auto p = tx.GetContact(a, 701).value();
    ASSERT_TRUE(p);
    EXPECT_EQ(p->email, "ana@example.com");
    EXPECT_FALSE(tx.GetCustomer(b, 601).value());
    EXPECT_EQ(tx.FindByExternalId(a, EntityKind::kCustomer, "erp", "K-1").value(), 501);
    EXPECT_EQ(tx.FindByExternalId(a, EntityKind::kContact, "erp", "K-1").value(), 702);
    EXPECT_FALSE(tx.FindByExternalId(a, EntityKind::kLocation, "erp", "K-1").value());
  });

  // A conflict is an error and changes nothing.
  Customer clash;
  clash.tenant = a;
  clash.id = 502;
  clash.customer_number = "C-2";
  clash.name = "Other";
  clash.external_ids = {{"crm", "crm-9"}};
  auto st = store_->Write([&](Txn& tx) { return tx.UpsertCustomer(clash); });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(st.error().code, "external_id_conflict");
  EXPECT_NE(st.error().message.find("crm-9"), std::string::npos);
  R([&](Txn& tx) { EXPECT_FALSE(tx.GetCustomer(a, 502).value()); });

  // Upsert replaces the whole set.
  cu.name = "Bakery Ltd";
  cu.external_ids = {{"erp", "K-1b"}};
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertCustomer(cu).has_value()); });
  R([&](Txn& tx) {
    auto c = tx.GetCustomer(a, 501).value();
    EXPECT_EQ(c->name, "Bakery Ltd");
    EXPECT_EQ(c->external_ids, (ExternalIds{{"erp", "K-1b"}}));
    EXPECT_FALSE(tx.FindByExternalId(a, EntityKind::kCustomer, "crm", "crm-9").value());
  });
  // Now free for another record.
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertCustomer(clash).has_value()); });

  W([&](Txn& tx) {
    EXPECT_FALSE(tx.DeleteEntity(b, EntityKind::kLocation, 601).value());
    EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kLocation, 601).value());
    EXPECT_FALSE(tx.DeleteEntity(a, EntityKind::kLocation, 601).value());
  });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.GetLocation(a, 601).value());
    EXPECT_FALSE(tx.FindByExternalId(a, EntityKind::kLocation, "erp", "L-1").value());
  });
}

// --- targets ---

// Publishes snapshot the directory in write transactions, where a backend may remember the
// records between events (the SQLite store does): every change to a customer, location or
// contact or to its external ids, in an earlier transaction or in the same one, shows in the
// next snapshot, and one rolled back does not.
TEST_P(StoreConformance, SnapshotFollowsEveryDirectoryChange) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  NewCustomerLocationContact(a);
  NewCustomerLocationContact(b);  // the same ids in another tenant
  Target t;                       // LoadSnapshot reads only the directory ids of the target
  t.tenant = a;
  t.customer_id = 1;
  t.location_id = 2;
  t.contact_id = 3;
  auto snapshot = [&](TenantId tenant = {}) {
    core::TargetSnapshot snap;
    W([&](Txn& tx) { snap = tx.LoadSnapshot(tenant.value != 0 ? tenant : a, t).value(); });
    return snap;
  };
  auto names = [](const core::TargetSnapshot& s) {
    return std::vector<std::string>{s.customer ? s.customer->name : "-",
                                    s.location ? s.location->name : "-",
                                    s.contact ? s.contact->display_name : "-"};
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names(snapshot()), (Names{"Bakery", "Shop", "Ana"}));
  EXPECT_EQ(names(snapshot()), (Names{"Bakery", "Shop", "Ana"}));  // as the next event would
  Customer cu;
  Location lo;
  Contact co;
  R([&](Txn& tx) {
    cu = *tx.GetCustomer(a, 1).value();
    lo = *tx.GetLocation(a, 2).value();
    co = *tx.GetContact(a, 3).value();
  });

  cu.name = "Bakery Ltd";
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertCustomer(cu).has_value()); });
  EXPECT_EQ(names(snapshot()), (Names{"Bakery Ltd", "Shop", "Ana"}));
  lo.name = "Shop 2";
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertLocation(lo).has_value()); });
  EXPECT_EQ(names(snapshot()), (Names{"Bakery Ltd", "Shop 2", "Ana"}));
  co.display_name = "Ana B.";
  co.email = "ana@example.com";
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertContact(co).has_value()); });
  auto snap = snapshot();
  EXPECT_EQ(names(snap), (Names{"Bakery Ltd", "Shop 2", "Ana B."}));
  EXPECT_EQ(snap.contact->email, "ana@example.com");
  EXPECT_EQ(names(snapshot(b)), (Names{"Bakery", "Shop", "Ana"}));  // b's records, not a's

  // External ids alone.
  cu.external_ids = {{"erp", "K-2"}, {"crm", "crm-1"}};
  lo.external_ids = {{"erp", "L-2"}};
  co.external_ids = {{"erp", "P-2"}};
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.UpsertCustomer(cu).has_value());
    ASSERT_TRUE(tx.UpsertLocation(lo).has_value());
    ASSERT_TRUE(tx.UpsertContact(co).has_value());
  });
  snap = snapshot();
  EXPECT_EQ(snap.customer->external_ids, cu.external_ids);
  EXPECT_EQ(snap.location->external_ids, lo.external_ids);
  EXPECT_EQ(snap.contact->external_ids, co.external_ids);

  // Changed and snapshot in one transaction, before and after the change.
  W([&](Txn& tx) {
    EXPECT_EQ(tx.LoadSnapshot(a, t).value().customer->name, "Bakery Ltd");
    Customer renamed = cu;
    renamed.name = "Bakery GmbH";
    ASSERT_TRUE(tx.UpsertCustomer(renamed).has_value());
    EXPECT_EQ(tx.LoadSnapshot(a, t).value().customer->name, "Bakery GmbH");
    ASSERT_TRUE(tx.UpsertCustomer(cu).has_value());
    EXPECT_EQ(tx.LoadSnapshot(a, t).value().customer->name, "Bakery Ltd");
  });
  // Changed, snapshot, then rolled back: the old records afterwards.
  auto st = store_->Write([&](Txn& tx) -> Status {
    Customer c2 = cu;
    c2.name = "Rolled back";
    c2.external_ids = {{"erp", "K-rolled-back"}};
    Contact p2 = co;
    p2.display_name = "Rolled back";
    EXPECT_TRUE(tx.UpsertCustomer(c2).has_value());
    EXPECT_TRUE(tx.UpsertContact(p2).has_value());
    auto inside = tx.LoadSnapshot(a, t).value();
    EXPECT_EQ(names(inside), (Names{"Rolled back", "Shop 2", "Rolled back"}));
    EXPECT_EQ(inside.customer->external_ids, c2.external_ids);
    return core::Fail(core::Error::Internal("roll back"));
  });
  EXPECT_FALSE(st.has_value());
  snap = snapshot();
  EXPECT_EQ(names(snap), (Names{"Bakery Ltd", "Shop 2", "Ana B."}));
  EXPECT_EQ(snap.customer->external_ids, cu.external_ids);

  // Deleted: no longer in the snapshot.
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteEntity(a, EntityKind::kContact, 3).value()); });
  EXPECT_EQ(names(snapshot()), (Names{"Bakery Ltd", "Shop 2", "-"}));
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpsertContact(co).has_value()); });  // and back
  EXPECT_EQ(names(snapshot()), (Names{"Bakery Ltd", "Shop 2", "Ana B."}));
}

TEST_P(StoreConformance, TargetsAndSnapshot) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client erp = NewClient(a, "erp");
  NewCustomerLocationContact(a);
  Target t;
  t.tenant = a;
  t.import_client = erp.id;
  t.source_system = "erp";
  t.external_id = "DEL-1";
  t.customer_id = 1;
  t.location_id = 2;
  t.contact_id = 3;
  t.title = "Fix oven";
  t.description = "hot";
  t.earliest_start = kT0;
  t.duration_minutes = 90;
  t.internal_notes = "never out";
  t.status = "Imported";
  t.external_ids = {{"crm", "CRM-1"}};
  t.created_at = kT0;
  t.updated_at = kT0;
  W([&](Txn& tx) {
    t = tx.InsertTarget(t).value();
    EXPECT_GT(t.id.value, 0);
    EXPECT_EQ(t.external_ids, (ExternalIds{{"crm", "CRM-1"}, {"erp", "DEL-1"}}));
  });
  // Another target with the same id in the same system conflicts.
  Target dup = t;
  dup.title = "dup";
  dup.external_ids.clear();
  auto st = store_->Write([&](Txn& tx) -> Status {
    auto r = tx.InsertTarget(dup);
    if (!r) return core::Fail(r.error());
    return {};
  });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, "external_id_conflict");

  R([&](Txn& tx) {
    auto got = tx.GetTarget(a, t.id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->title, "Fix oven");
    EXPECT_EQ(got->duration_minutes, 90);
    EXPECT_FALSE(got->latest_end);
    EXPECT_EQ(got->external_ids.size(), 2u);
    EXPECT_FALSE(tx.GetTarget(b, t.id).value());
    auto found = tx.FindTargetByExternalId(a, "crm", "CRM-1").value();
    ASSERT_TRUE(found);
    EXPECT_EQ(found->id, t.id);
    EXPECT_FALSE(tx.FindTargetByExternalId(b, "erp", "DEL-1").value());

    auto snap = tx.LoadSnapshot(a, *got).value();
    EXPECT_EQ(snap.target_id, t.id.value);
    EXPECT_EQ(snap.external_ids.at("erp"), "DEL-1");
    ASSERT_TRUE(snap.customer);
    EXPECT_EQ(snap.customer->customer_number, "C-1");
    EXPECT_EQ(snap.customer->external_ids.at("erp"), "K-1");
    ASSERT_TRUE(snap.location);
    EXPECT_EQ(snap.location->name, "Shop");
    ASSERT_TRUE(snap.contact);
    EXPECT_EQ(snap.contact->phone, "+49");
  });

  // Update: every field, external ids replaced (the source id always stays).
  t.status = "Cancelled";
  t.cancel_reason = "customer called";
  t.location_id.reset();
  t.external_ids = {{"billing", "B-7"}};
  t.updated_at = kT0 + 5;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateTarget(t).has_value()); });
  R([&](Txn& tx) {
    auto got = tx.GetTarget(a, t.id).value();
    EXPECT_EQ(got->status, "Cancelled");
    EXPECT_EQ(got->cancel_reason, "customer called");
    EXPECT_FALSE(got->location_id);
    EXPECT_EQ(got->external_ids, (ExternalIds{{"billing", "B-7"}, {"erp", "DEL-1"}}));
    EXPECT_FALSE(tx.FindTargetByExternalId(a, "crm", "CRM-1").value());
    auto snap = tx.LoadSnapshot(a, *got).value();
    EXPECT_FALSE(snap.location);
  });
  Target missing = t;
  missing.tenant = b;
  auto upd = store_->Write([&](Txn& tx) { return tx.UpdateTarget(missing); });
  ASSERT_FALSE(upd);
  EXPECT_EQ(upd.error().kind, ErrorKind::kNotFound);

  // Listing with filters and paging.
  W([&](Txn& tx) {
    for (int i = 2; i <= 6; ++i) {
      Target n = t;
      n.external_id = "DEL-" + std::to_string(i);
      n.external_ids.clear();
      n.status = i % 2 == 0 ? "Imported" : "Scheduled";
      (void)tx.InsertTarget(n).value();
    }
  });
  R([&](Txn& tx) {
    auto p1 = tx.ListTargets(a, TargetFilter{}, Page{4, std::nullopt}).value();
    ASSERT_EQ(p1.rows.size(), 4u);
    ASSERT_TRUE(p1.next);
    EXPECT_EQ(p1.rows[0].id, t.id);
    EXPECT_EQ(p1.rows[1].external_ids.at("erp"), "DEL-2");
    auto p2 = tx.ListTargets(a, TargetFilter{}, Page{4, p1.next}).value();
    EXPECT_EQ(p2.rows.size(), 2u);
    EXPECT_FALSE(p2.next);
    TargetFilter byExt;
    byExt.external_id = "DEL-4";
    auto one = tx.ListTargets(a, byExt, Page{}).value();
    ASSERT_EQ(one.rows.size(), 1u);
    EXPECT_EQ(one.rows[0].external_id, "DEL-4");
    byExt.source_system = "crm";
    EXPECT_EQ(tx.ListTargets(a, byExt, Page{}).value().rows.size(), 0u);
    TargetFilter byStatus;
    byStatus.status = "Scheduled";
    EXPECT_EQ(tx.ListTargets(a, byStatus, Page{}).value().rows.size(), 2u);
    EXPECT_EQ(tx.ListTargets(b, TargetFilter{}, Page{}).value().rows.size(), 0u);
  });
  W([&](Txn& tx) { EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kTarget, t.id.value).value()); });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.GetTarget(a, t.id).value());
    EXPECT_FALSE(tx.FindTargetByExternalId(a, "erp", "DEL-1").value());
  });
}

// --- events and idempotency ---

TEST_P(StoreConformance, EventsListFiltersAndPaging) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c1 = NewClient(a, "erp");
  Client c2 = NewClient(a, "crm");
  Subscription s2 = NewSubscription(a, c2.id);
  std::vector<StoredEvent> evs;
  for (int i = 0; i < 6; ++i) {
    auto e = MakeEvent(a, i % 2 == 0 ? 10 : 11, kT0 + i * UnixMs{1000},
                       i == 5 ? EventType::kTargetImported : EventType::kAppointmentCompleted);
    if (i == 0) e.origin_client = c1.id;
    evs.push_back(e);
  }
  W([&](Txn& tx) {
    for (auto& e : evs) {
      if (&e == &evs[3]) continue;
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
    }
    ASSERT_TRUE(tx.InsertEvent(MakeEvent(b, 10, kT0)).has_value());
  });
  Publish(evs[3], {s2.id});  // c2 sees evs[3] through its delivery
  R([&](Txn& tx) {
    auto got = tx.GetEvent(a, evs[0].record.event_id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->record.type, EventType::kAppointmentCompleted);
    EXPECT_EQ(got->record.occurred_at, kT0 - 1000);
    EXPECT_EQ(got->record.accepted_at, kT0);
    EXPECT_EQ(got->record.target_id, 10);
    EXPECT_EQ(got->record.tenant, a);
    EXPECT_EQ(got->origin_client, c1.id);
    EXPECT_EQ(got->record.data, evs[0].record.data);
    EXPECT_FALSE(tx.GetEvent(b, evs[0].record.event_id).value());

    // Newest first, paged.
    auto p1 = tx.ListEvents(a, EventFilter{}, Page{4, std::nullopt}).value();
    ASSERT_EQ(p1.rows.size(), 4u);
    EXPECT_EQ(p1.rows[0].record.event_id, evs[5].record.event_id);
    EXPECT_EQ(p1.rows[3].record.event_id, evs[2].record.event_id);
    auto p2 = tx.ListEvents(a, EventFilter{}, Page{4, p1.next}).value();
    ASSERT_EQ(p2.rows.size(), 2u);
    EXPECT_EQ(p2.rows[1].record.event_id, evs[0].record.event_id);
    EXPECT_FALSE(p2.next);

    EventFilter f;
    f.event_type = "target.imported";
    EXPECT_EQ(tx.ListEvents(a, f, Page{}).value().rows.size(), 1u);
    f = {};
    f.target = TargetId(11);
    EXPECT_EQ(tx.ListEvents(a, f, Page{}).value().rows.size(), 3u);
    f = {};
    f.since = kT0 + 1000 - 1000;  // occurred_at = accepted - 1000
    f.until = kT0 + 3000 - 1000;
    auto window = tx.ListEvents(a, f, Page{}).value();
    ASSERT_EQ(window.rows.size(), 2u);
    EXPECT_EQ(window.rows[0].record.event_id, evs[2].record.event_id);
    f = {};
    f.client = c1.id;
    auto mine = tx.ListEvents(a, f, Page{}).value();
    ASSERT_EQ(mine.rows.size(), 1u);
    EXPECT_EQ(mine.rows[0].record.event_id, evs[0].record.event_id);
    f.client = c2.id;
    auto theirs = tx.ListEvents(a, f, Page{}).value();
    ASSERT_EQ(theirs.rows.size(), 1u);
    EXPECT_EQ(theirs.rows[0].record.event_id, evs[3].record.event_id);
    EXPECT_EQ(tx.ListEvents(b, EventFilter{}, Page{}).value().rows.size(), 1u);
  });
}

// The events list's cursor is an event id (the last of the page before): another text is
// refused, with or without a target, as the id lists refuse theirs.
TEST_P(StoreConformance, EventListsRefuseACursorThatIsNoEventId) {
  TenantId a = NewTenant("a");
  // (A lower-case id sorts after every real one: it would start the list over.)
  for (const char* bad : {"abc", "zzz", "evt_", "evt_0", "evt_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
                          "evt_7zzzzzzzzzzzzzzzzzzzzzzzzz"}) {
    for (const std::optional<TargetId> target :
         {std::optional<TargetId>(), std::optional(TargetId(1))}) {
      R([&](Txn& tx) {
        EventFilter f;
        f.target = target;
        auto r = tx.ListEvents(a, f, Page{10, std::string(bad)});
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, "invalid_cursor") << bad;
      });
    }
  }
}

// GET /v1/events?targetId= lists every stored event of the target, newest first, through pages
// of any size, however the events were stored: one by one or in a batch, interleaved with
// another target's, one stored after a newer event of its target (ids drawn in one order and
// stored in the other, alone and within a batch), of a target without a row; on SQLite also
// events stored before its migration 13 (no links). A cursor that is no event of the target
// (deleted since, another target's, made up) goes on below it. After a target's row is deleted
// its events are still listed. After retention it lists exactly the events of the target still
// stored: the two kept for their open deliveries (CONTRACT §13: every finished one goes). (SQLite
// keeps a target's events as a chain instead of an index, store/sql/events.cpp: seen failing
// with a single insert's out-of-order splice left out (after the late event, the target's older
// linked events missing), with retention leaving the kept events linked (both missing) or
// unlinking only the newer one (the older missing), with a deleted target's chain left linked
// (all but its first missing), with a cursor's next event read without the order check (on a
// link to a newer event the pages repeat until the test's bound), and with a cursor that is no
// event of the target read from the target's newest event (the events above it listed again).)
TEST_P(StoreConformance, TargetEventsListEveryEventThroughPages) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription sub = NewSubscription(a, c.id);
  std::vector<std::int64_t> targets;
  W([&](Txn& tx) {
    for (int i = 0; i < 3; ++i) {
      const Target t = TargetRow(a, c.id, "erp", "CHAIN-" + std::to_string(i));
      targets.push_back(tx.InsertTarget(t).value().id.value);
    }
  });
  const std::int64_t t1 = targets[0];
  const std::int64_t t2 = targets[1];
  const std::int64_t t3 = targets[2];
  const std::int64_t rowless = 99'999;  // no target row
  std::vector<StoredEvent> evs;         // in id order
  for (int i = 0; i < 21; ++i) {
    const std::int64_t target = i >= 18 ? t3 : (i % 5 == 4 ? t2 : (i == 13 ? rowless : t1));
    evs.push_back(
        MakeEvent(a, target, kT0 + i * UnixMs{10},
                  i % 3 == 0 ? EventType::kTargetUpdated : EventType::kAppointmentCompleted));
  }
  auto one = [&](int i) { W([&](Txn& tx) { ASSERT_TRUE(tx.InsertEvent(evs[i]).has_value()); }); };
  auto batch = [&](std::initializer_list<int> items) {
    std::vector<StoredEvent> b;
    for (int i : items) b.push_back(evs[i]);
    W([&](Txn& tx) { ASSERT_TRUE(tx.InsertEvents(b).has_value()); });
  };
  const bool sqlite = GetParam().name == "Sqlite";
  one(0);
  one(1);
  if (sqlite) {
    // As a database of before migration 13 has them: nothing linked.
    Sql("UPDATE events SET prev_target_row = NULL");
    Sql("UPDATE targets SET last_event_row = NULL");
  }
  one(3);
  one(2);  // after a newer event of its target (older than its first linked one)
  one(4);
  batch({5, 7, 6, 8, 9});  // 6 after 7 within the batch
  // Two open ones, linked one to the other: their deliveries wait, so retention keeps them.
  Publish(evs[12], {sub.id});
  batch({10, 11, 13});  // both older than 12
  one(14);
  Publish(evs[15], {sub.id});
  one(17);
  one(16);  // after a newer event of its target, within its chain
  for (int i : {18, 19, 20}) one(i);
  if (sqlite) {
    // A link to a newer event (a row id reused after retention deleted it): the list must not
    // follow it from a cursor.
    Sql("UPDATE events SET prev_target_row = (SELECT id FROM events WHERE event_id = '" +
        evs[20].record.event_id + "') WHERE event_id = '" + evs[19].record.event_id + "'");
  }

  // Every page of `size` of the target's events below `after`, with `type` if given: the ids in
  // list order.
  auto list_from = [&](std::int64_t target, std::optional<std::string> after, int size,
                       std::optional<std::string> type) {
    std::vector<std::string> got;
    R([&](Txn& tx) {
      EventFilter f;
      f.target = TargetId(target);
      f.event_type = type;
      Page page{size, std::move(after)};
      for (int pages = 0; pages < 100; ++pages) {
        auto p = tx.ListEvents(a, f, page).value();
        EXPECT_LE(static_cast<int>(p.rows.size()), size);
        for (const auto& e : p.rows) got.push_back(e.record.event_id);
        if (!p.next) return;
        page.after = p.next;
      }
      ADD_FAILURE() << "more than 100 pages";
    });
    return got;
  };
  auto list = [&](std::int64_t target, int size, std::optional<std::string> type) {
    return list_from(target, std::nullopt, size, std::move(type));
  };
  // The expected list: the events of `target` that `keep` keeps, newest first.
  auto expected = [&](std::int64_t target, const std::function<bool(const StoredEvent&)>& keep) {
    std::vector<std::string> want;
    for (auto it = evs.rbegin(); it != evs.rend(); ++it) {
      if (it->record.target_id == target && keep(*it)) want.push_back(it->record.event_id);
    }
    return want;
  };
  auto all = [](const StoredEvent&) { return true; };
  for (int size : {1, 2, 3, 5, 100}) {
    EXPECT_EQ(list(t1, size, std::nullopt), expected(t1, all)) << "pages of " << size;
    EXPECT_EQ(list(t2, size, std::nullopt), expected(t2, all)) << "pages of " << size;
    EXPECT_EQ(list(t3, size, std::nullopt), expected(t3, all)) << "pages of " << size;
    EXPECT_EQ(list(rowless, size, std::nullopt), expected(rowless, all)) << "pages of " << size;
    EXPECT_EQ(
        list(t1, size, "target.updated"),
        expected(t1,
                 [](const StoredEvent& e) { return e.record.type == EventType::kTargetUpdated; }))
        << "pages of " << size;
  }
  // Below a cursor that is another target's event (t2's evs[9]), or none at all.
  auto below = [&](std::int64_t target, const std::string& cursor,
                   const std::function<bool(const StoredEvent&)>& keep) {
    return expected(target,
                    [&](const StoredEvent& e) { return e.record.event_id < cursor && keep(e); });
  };
  EXPECT_EQ(list_from(t1, evs[9].record.event_id, 2, std::nullopt),
            below(t1, evs[9].record.event_id, all));
  // Below the smallest id there can be: nothing.
  EXPECT_TRUE(list_from(t1, "evt_" + std::string(26, '0'), 2, std::nullopt).empty());

  // A target's row deleted (no API offers it; the store allows it): its events are still listed.
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteEntity(a, EntityKind::kTarget, t2).value()); });
  EXPECT_EQ(list(t2, 2, std::nullopt), expected(t2, all));

  // Retention of everything finished: the list holds what is still stored.
  std::string after;
  for (int calls = 0; calls < 50; ++calls) {
    PurgeResult r;
    W([&](Txn& tx) { r = tx.PurgeEvents(after, kT0 + 60'000, 3).value(); });
    if (!r.next) break;
    after = *r.next;
  }
  std::set<std::string> stored;
  R([&](Txn& tx) {
    for (const auto& e : evs) {
      if (tx.GetEvent(a, e.record.event_id).value()) stored.insert(e.record.event_id);
    }
  });
  EXPECT_EQ(stored, (std::set<std::string>{evs[12].record.event_id, evs[15].record.event_id}))
      << "every finished event goes; those with an open delivery stay";
  auto still = [&](const StoredEvent& e) { return stored.contains(e.record.event_id); };
  for (int size : {1, 2, 100}) {
    EXPECT_EQ(list(t1, size, std::nullopt), expected(t1, still)) << "pages of " << size;
    EXPECT_EQ(list(t2, size, std::nullopt), expected(t2, still)) << "pages of " << size;
  }
  // Below a cursor deleted by retention (evs[16]).
  EXPECT_EQ(list_from(t1, evs[16].record.event_id, 1, std::nullopt),
            below(t1, evs[16].record.event_id, still));
}

// A cursor that is no event of the target, with more than 10,000 of the tenant's other events
// between it and the target's next event below it: the list still goes on with that event (on
// SQLite the seek through the tenant's events gives up after 10,000 rows and follows the
// target's chain from its newest event instead; seen failing when it gave up with nothing), and
// a cursor above every event lists the target's events from its newest.
TEST_P(StoreConformance, TargetEventsCursorBeyondManyOtherEvents) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  std::int64_t target = 0;
  W([&](Txn& tx) { target = tx.InsertTarget(TargetRow(a, c.id, "erp", "FAR")).value().id.value; });
  std::vector<StoredEvent> mine;  // the target's, in id order
  std::vector<StoredEvent> others;
  others.reserve(10'050);
  mine.push_back(MakeEvent(a, target, kT0));
  mine.push_back(MakeEvent(a, target, kT0 + 1));
  for (int i = 0; i < 10'050; ++i) others.push_back(MakeEvent(a, 7, kT0 + 2));
  mine.push_back(MakeEvent(a, target, kT0 + 3));
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvent(mine[0]).has_value());
    ASSERT_TRUE(tx.InsertEvent(mine[1]).has_value());
    ASSERT_TRUE(tx.InsertEvents(others).has_value());
    ASSERT_TRUE(tx.InsertEvent(mine[2]).has_value());
  });
  auto list_from = [&](const std::string& after) {
    std::vector<std::string> got;
    R([&](Txn& tx) {
      EventFilter f;
      f.target = TargetId(target);
      const auto page = tx.ListEvents(a, f, Page{10, after}).value();
      for (const auto& e : page.rows) got.push_back(e.record.event_id);
    });
    return got;
  };
  EXPECT_EQ(list_from(others.back().record.event_id),
            (std::vector<std::string>{mine[1].record.event_id, mine[0].record.event_id}));
  EXPECT_EQ(list_from(std::string("evt_7") + std::string(25, 'Z')),
            (std::vector<std::string>{mine[2].record.event_id, mine[1].record.event_id,
                                      mine[0].record.event_id}));
}

// CONTRACT.md §10: payloads are stored as text, never re-encoded. A billing object whose numbers
// a double (or a jsonb column) would renumber comes back byte for byte, key order and all.
TEST_P(StoreConformance, EventDataKeepsBillingTextExactly) {
  TenantId a = NewTenant("a");
  StoredEvent e = MakeEvent(a, 10, kT0, EventType::kBillingEventCreated);
  const std::string billing =
      R"({"currency":"EUR","amount":149.50,"lines":[{"description":"x","quantity":1e2,)"
      R"("unitPrice":12345678901234567890.10}]})";
  e.record.data = {{"appointmentId", 441}, {"billing", core::RawJson(billing)}};
  W([&](Txn& tx) { ASSERT_TRUE(tx.InsertEvent(e).has_value()); });
  R([&](Txn& tx) {
    auto got = tx.GetEvent(a, e.record.event_id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(core::EventDataText(got->record.data),
              R"({"appointmentId":441,"billing":)" + billing + "}");
    EXPECT_EQ(got->record.data, e.record.data);
  });
}

TEST_P(StoreConformance, IdempotencyRecords) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  R([&](Txn& tx) { EXPECT_FALSE(tx.GetIdempotency(a, "k1").value()); });
  W([&](Txn& tx) {
    auto first =
        tx.PutIdempotencyIfAbsent(a, "k1", IdempotencyRecord{"h1", 202, R"({"eventId":"x"})", kT0});
    ASSERT_TRUE(first.has_value());
    EXPECT_FALSE(*first) << "stored";
  });
  R([&](Txn& tx) {
    auto r = tx.GetIdempotency(a, "k1").value();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->request_hash, "h1");
    EXPECT_EQ(r->status, 202);
    EXPECT_EQ(r->body, R"({"eventId":"x"})");
    EXPECT_EQ(r->created_at, kT0);
    EXPECT_FALSE(tx.GetIdempotency(b, "k1").value());
  });
  // Taken: the first record is answered and kept; another tenant's key space is its own.
  W([&](Txn& tx) {
    auto again = tx.PutIdempotencyIfAbsent(a, "k1", IdempotencyRecord{"h2", 409, "{}", kT0 + 1});
    ASSERT_TRUE(again.has_value());
    ASSERT_TRUE(*again);
    EXPECT_EQ((*again)->request_hash, "h1");
    EXPECT_EQ((*again)->body, R"({"eventId":"x"})");
    EXPECT_FALSE(
        tx.PutIdempotencyIfAbsent(b, "k1", IdempotencyRecord{"h3", 202, "{}", kT0}).value());
  });
  R([&](Txn& tx) { EXPECT_EQ(tx.GetIdempotency(a, "k1").value()->request_hash, "h1"); });
}

// The same key from two transactions at once (two processes, or two writer connections): one
// stores, the other gets the first one's record, whatever the interleaving.
TEST_P(StoreConformance, IdempotencyKeyRaceStoresOnce) {
  TenantId a = NewTenant("a");
  constexpr int kRacers = 8;
  std::atomic<int> stored{0};
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  threads.reserve(kRacers);
  for (int t = 0; t < kRacers; ++t) {
    threads.emplace_back([&, t] {
      std::optional<IdempotencyRecord> seen;
      auto st = store_->Write([&](Txn& tx) -> Status {
        auto r = tx.PutIdempotencyIfAbsent(
            a, "race", IdempotencyRecord{"h", 202, "{\"n\":" + std::to_string(t) + "}", kT0});
        if (!r) return core::Fail(r.error());
        seen = *r;
        return {};
      });
      ASSERT_TRUE(st.has_value()) << st.error().message;
      (seen ? answered : stored)++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(answered.load(), kRacers - 1);
}

// --- subscriptions ---

// Fan-out runs in write transactions, where a backend may remember each tenant's list between
// events (the SQLite store does): every change to subscriptions and clients, in an earlier
// transaction, in the same one, or in one rolled back, must show in the next list.
TEST_P(StoreConformance, FanoutListFollowsEveryChange) {
  TenantId a = NewTenant("a");
  Client c1 = NewClient(a, "erp");
  Subscription s1 = NewSubscription(a, c1.id);
  // The enabled ones, which fan-out sends to (a disabled one is listed for rows inserted
  // cancelled: enabled() below).
  auto fanout = [&] {
    std::vector<std::int64_t> ids;
    W([&](Txn& tx) {
      auto list = tx.ListFanoutTargets(a).value();
      for (const auto& [sub, client] : list) {
        if (sub.enabled) ids.push_back(sub.id.value);
      }
    });
    return ids;
  };
  auto enabled = [](const std::vector<std::pair<Subscription, Client>>& list) {
    return std::count_if(list.begin(), list.end(), [](const auto& e) { return e.first.enabled; });
  };
  using Ids = std::vector<std::int64_t>;
  EXPECT_EQ(fanout(), Ids{s1.id.value});
  EXPECT_EQ(fanout(), Ids{s1.id.value});  // a second time, as the next event would
  Subscription s2 = NewSubscription(a, c1.id);
  EXPECT_EQ(fanout(), (Ids{s1.id.value, s2.id.value}));
  W([&](Txn& tx) {
    EXPECT_EQ(enabled(tx.ListFanoutTargets(a).value()), 2);  // read before the change
    Subscription off = *tx.GetSubscription(a, s1.id).value();
    off.enabled = false;
    ASSERT_TRUE(tx.UpdateSubscription(off).has_value());
    EXPECT_EQ(enabled(tx.ListFanoutTargets(a).value()), 1) << "disabled in this transaction";
  });
  EXPECT_EQ(fanout(), Ids{s2.id.value});
  // Created and listed in one transaction, also after a list read before it (the next event
  // of a batch): listed.
  W([&](Txn& tx) {
    EXPECT_EQ(enabled(tx.ListFanoutTargets(a).value()), 1);
    Subscription s3 = s2;
    s3.id = {};
    s3 = tx.CreateSubscription(s3).value();
    auto ids = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(ids.size(), 3u);
    EXPECT_EQ(ids[2].first.id, s3.id);
    ASSERT_TRUE(tx.DeleteSubscription(a, s3.id).value());
  });
  EXPECT_EQ(fanout(), Ids{s2.id.value});
  // Created, listed, then rolled back: not listed afterwards.
  auto st = store_->Write([&](Txn& tx) -> Status {
    Subscription s4 = s2;
    s4.id = {};
    (void)tx.CreateSubscription(s4).value();
    EXPECT_EQ(enabled(tx.ListFanoutTargets(a).value()), 2);
    return core::Fail(core::Error::Internal("roll back"));
  });
  EXPECT_FALSE(st.has_value());
  EXPECT_EQ(fanout(), Ids{s2.id.value});
  // Deleted: not listed, enabled or not.
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteSubscription(a, s1.id).value()); });
  W([&](Txn& tx) { EXPECT_EQ(tx.ListFanoutTargets(a).value().size(), 1u); });
  // The client's source system changes what fan-out renders, from the next list on.
  W([&](Txn& tx) {
    EXPECT_FALSE(tx.ListFanoutTargets(a).value().at(0).second.billing_details_allowed);
    Client renamed = *tx.GetClient(a, c1.id).value();
    renamed.billing_details_allowed = true;
    ASSERT_TRUE(tx.UpdateClient(renamed).value());
    EXPECT_TRUE(tx.ListFanoutTargets(a).value().at(0).second.billing_details_allowed);
  });
  W([&](Txn& tx) {
    auto list = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_TRUE(list[0].second.billing_details_allowed);
  });
  W([&](Txn& tx) {
    EXPECT_EQ(tx.ListFanoutTargets(a).value().size(), 1u);  // read before the change
    ASSERT_TRUE(tx.DeleteClient(a, c1.id, kT0 + 5).value());
    EXPECT_TRUE(tx.ListFanoutTargets(a).value().empty())
        << "its client deleted in this transaction";
  });
  EXPECT_EQ(fanout(), Ids{});
}

TEST_P(StoreConformance, SubscriptionsCrudAndFanout) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c1 = NewClient(a, "erp");
  Client c2 = NewClient(a, "crm");
  Subscription s1 = NewSubscription(a, c1.id);
  Subscription s2 = NewSubscription(a, c2.id);
  Subscription off = NewSubscription(a, c2.id, /*enabled=*/false);
  auto got = GetSub(a, s1.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->url, s1.url);
  EXPECT_EQ(got->event_types, s1.event_types);
  EXPECT_EQ(got->options, s1.options);
  EXPECT_TRUE(got->ordered);
  EXPECT_EQ(got->rate_limit_per_second, 12.5);
  EXPECT_EQ(got->max_concurrency, 3);
  EXPECT_EQ(got->headers, s1.headers);
  EXPECT_EQ(got->secret, s1.secret);
  EXPECT_FALSE(got->previous_secret);
  EXPECT_FALSE(GetSub(b, s1.id));

  R([&](Txn& tx) {
    auto all = tx.ListSubscriptions(a, std::nullopt, Page{2, std::nullopt}).value();
    ASSERT_EQ(all.rows.size(), 2u);
    auto rest = tx.ListSubscriptions(a, std::nullopt, Page{2, all.next}).value();
    ASSERT_EQ(rest.rows.size(), 1u);
    EXPECT_EQ(rest.rows[0].id, off.id);
    auto mine = tx.ListSubscriptions(a, c2.id, Page{}).value();
    EXPECT_EQ(mine.rows.size(), 2u);
    EXPECT_EQ(tx.ListSubscriptions(b, std::nullopt, Page{}).value().rows.size(), 0u);
    auto fan = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(fan.size(), 3u);  // `off` too, disabled: fan-out inserts its rows cancelled
    EXPECT_EQ(fan[0].first.id, s1.id);
    EXPECT_EQ(fan[0].second.source_system, "erp");
    EXPECT_EQ(fan[1].second.id, c2.id);
    EXPECT_EQ(fan[2].first.id, off.id);
    EXPECT_FALSE(fan[2].first.enabled);
    EXPECT_TRUE(tx.ListFanoutTargets(b).value().empty());
  });

  // Update, rotate, disable.
  Subscription u = *got;
  u.url = "https://new.example/h";
  u.event_types = {"*"};
  u.options.include_billing_details = true;
  u.previous_secret = u.secret;
  u.previous_secret_expires_at = kT0 + 86'400'000;
  u.secret = "whsec_bmV3c2VjcmV0bmV3c2VjcmV0bmV3c2VjcmV0";
  u.headers.clear();
  u.rate_limit_per_second.reset();
  u.updated_at = kT0 + 7;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(u).has_value()); });
  got = GetSub(a, s1.id);
  EXPECT_EQ(got->url, u.url);
  EXPECT_EQ(got->event_types, std::vector<std::string>{"*"});
  EXPECT_TRUE(got->options.include_billing_details);
  EXPECT_EQ(got->previous_secret, s1.secret);
  EXPECT_EQ(got->previous_secret_expires_at, kT0 + 86'400'000);
  EXPECT_EQ(got->secret, u.secret);
  EXPECT_TRUE(got->headers.empty());
  EXPECT_FALSE(got->rate_limit_per_second);
  EXPECT_EQ(got->updated_at, kT0 + 7);
  Subscription other = u;
  other.tenant = b;
  auto st = store_->Write([&](Txn& tx) { return tx.UpdateSubscription(other); });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kNotFound);

  // Disabling cancels its open deliveries (not its finished ones).
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s1.id, s2.id});
  auto done = Publish(MakeEvent(a, 1, kT0 + 1), {s1.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(done[0], DeliveryStatus::kSucceeded, kT0 + 5)})
            .has_value());
  });
  u = *GetSub(a, s1.id);
  u.enabled = false;
  u.disabled_reason = "endpoint_gone";
  u.disabled_at = kT0 + 9;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(u).has_value()); });
  got = GetSub(a, s1.id);
  EXPECT_FALSE(got->enabled);
  EXPECT_EQ(got->disabled_reason, "endpoint_gone");
  EXPECT_EQ(got->disabled_at, kT0 + 9);
  EXPECT_EQ(got->last_success_at, kT0 + 5);
  auto views = Deliveries(a, jobs[0].event_id);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[0].status, DeliveryStatus::kCancelled);
  EXPECT_EQ(views[1].status, DeliveryStatus::kPending);
  EXPECT_EQ(Deliveries(a, done[0].event_id)[0].status, DeliveryStatus::kSucceeded);
  R([&](Txn& tx) {
    auto list = tx.ListFanoutTargets(a).value();
    // The disabled ones too (s1 now, and `off`): fan-out inserts their rows cancelled.
    ASSERT_EQ(list.size(), 3u);
    EXPECT_FALSE(list[0].first.enabled);
    EXPECT_TRUE(list[1].first.enabled);
    EXPECT_FALSE(list[2].first.enabled);
  });

  // Delete: invisible to Get/List/fan-out, its deliveries stay visible, cancelled.
  W([&](Txn& tx) {
    EXPECT_FALSE(tx.DeleteSubscription(b, s2.id).value());
    EXPECT_TRUE(tx.DeleteSubscription(a, s2.id).value());
    EXPECT_FALSE(tx.DeleteSubscription(a, s2.id).value());
  });
  EXPECT_FALSE(GetSub(a, s2.id));
  R([&](Txn& tx) {
    EXPECT_EQ(tx.ListSubscriptions(a, c2.id, Page{}).value().rows.size(), 1u);
    auto list = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(list.size(), 2u);  // the disabled s1 and `off`
    EXPECT_EQ(list[0].first.id, s1.id);
    EXPECT_EQ(list[1].first.id, off.id);
  });
  views = Deliveries(a, jobs[0].event_id);
  ASSERT_EQ(views.size(), 2u);
  EXPECT_EQ(views[1].subscription, s2.id);
  EXPECT_EQ(views[1].client, c2.id);
  EXPECT_EQ(views[1].status, DeliveryStatus::kCancelled);
  auto upd = store_->Write([&](Txn& tx) {
    const Subscription& gone = s2;
    return tx.UpdateSubscription(gone);
  });
  EXPECT_FALSE(upd);
}

// --- deliveries ---

// The overflow of a full lane (dispatcher): given back due no earlier than the time given, a
// later due time kept; fenced like ReleaseLeases (another owner's rows untouched, counted).
TEST_P(StoreConformance, DeferLeasesGivesRowsBackDueLater) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s1.id}, "owner");
  auto later = Publish(MakeEvent(a, 2, kT0 + 50'000), {s1.id}, "owner");
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(later.size(), 1u);
  W([&](Txn& tx) {
    EXPECT_EQ(tx.DeferLeases("someone-else", {jobs[0].id}, kT0 + 5'000).value(), 1);
    EXPECT_EQ(tx.DeferLeases("owner", {jobs[0].id, later[0].id}, kT0 + 5'000).value(), 0);
    EXPECT_EQ(tx.DeferLeases("owner", {jobs[0].id}, kT0 + 5'000).value(), 1) << "not leased now";
    ASSERT_TRUE(tx.ReleaseOwner("owner").has_value());
  });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 + 4'999, kT0 + 60'000, 10)->empty())
        << "due again only from the deferral on";
  });
  W([&](Txn& tx) {
    auto claimed = tx.ClaimDue(kPublisher, kT0 + 5'000, kT0 + 60'000, 10).value();
    ASSERT_EQ(claimed.size(), 1u);
    EXPECT_EQ(claimed[0].id, jobs[0].id);
    EXPECT_EQ(claimed[0].next_attempt_at, kT0 + 5'000);
  });
  // The later row kept its own (later) due time.
  auto v = Deliveries(a, later[0].event_id);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].next_attempt_at, kT0 + 50'000);
}

TEST_P(StoreConformance, InsertDeliveriesLeasedAndClaimDue) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  Subscription off = NewSubscription(a, c.id, false);
  auto e = MakeEvent(a, 77, kT0);
  auto jobs = Publish(e, {s1.id, s2.id, off.id}, "fanout-owner");
  ASSERT_EQ(jobs.size(), 3u);
  EXPECT_EQ(jobs[0].event_type, "appointment.completed");
  EXPECT_EQ(jobs[0].occurred_at, e.record.occurred_at);
  EXPECT_EQ(jobs[0].target_id, 77);
  EXPECT_EQ(jobs[0].tenant, a);
  EXPECT_EQ(jobs[1].subscription, s2.id);
  EXPECT_EQ(jobs[0].attempts, 0);
  EXPECT_EQ(jobs[0].next_attempt_at, kT0);
  EXPECT_NE(jobs[0].id, jobs[1].id);

  // Leased at insertion: nobody can claim them.
  R([&](Txn& tx) { EXPECT_FALSE(tx.NextDueAt().value()); });
  W([&](Txn& tx) { EXPECT_TRUE(tx.ClaimDue("other", kT0 + 10'000, kT0 + 20'000, 10)->empty()); });

  // Released: claimable once, oldest due first, never twice; not for a disabled subscription.
  auto later = Publish(MakeEvent(a, 78, kT0 + 500), {s1.id}, "fanout-owner");
  ASSERT_EQ(later.size(), 1u);
  W([&](Txn& tx) {
    // The probe "other" above leaves (otherwise it counts as a process that sends, below).
    ASSERT_TRUE(tx.ReleaseOwner("other").has_value());
    // Fenced: another owner's release changes nothing and is counted.
    EXPECT_EQ(tx.ReleaseLeases("other", {jobs[0].id, later[0].id}).value(), 2);
    EXPECT_EQ(tx.ReleaseLeases("fanout-owner", {jobs[0].id, jobs[1].id, jobs[2].id}).value(), 0);
    EXPECT_EQ(tx.ReleaseLeases("fanout-owner", {later[0].id}).value(), 0);
    // ...and its subscriptions (shared databases), so that another process may claim.
    ASSERT_TRUE(tx.ReleaseOwner("fanout-owner").has_value());
  });
  R([&](Txn& tx) { EXPECT_EQ(tx.NextDueAt().value(), kT0); });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 - 1, kT0 + 20'000, 10)->empty()) << "not due yet";
    auto first = tx.ClaimDue(kPublisher, kT0 + 1000, kT0 + 20'000, 2).value();
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].next_attempt_at, kT0);
    EXPECT_EQ(first[0].event_type, "appointment.completed");
    EXPECT_EQ(first[0].target_id, 77);
    EXPECT_EQ(first[0].data_json,
              jobs[0].data_json == first[0].data_json ? jobs[0].data_json : jobs[1].data_json);
    auto second = tx.ClaimDue(kPublisher, kT0 + 1000, kT0 + 20'000, 10).value();
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].id, later[0].id);
    EXPECT_EQ(second[0].target_id, 78);
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 + 1000, kT0 + 20'000, 10)->empty());
    std::set<std::int64_t> ids{first[0].id.value, first[1].id.value, second[0].id.value};
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_FALSE(ids.count(jobs[2].id.value)) << "disabled subscription";
  });
  R([&](Txn& tx) { EXPECT_FALSE(tx.NextDueAt().value()); });
}

// Leases (store.h): an owner's rows stay its own while it renews; once its lease has expired,
// the next claim by anyone takes them back; the late owner's outcome, release and renewal then
// change nothing, and it learns that it lost them. Time is the caller's: a fake clock.
TEST_P(StoreConformance, ExpiredLeasesAreTakenOverAndTheLateOwnerIsFenced) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s.id}, "old", kT0 + 30'000);
  ASSERT_EQ(jobs.size(), 1u);

  // Renewed in time: still the old owner's.
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.RenewLease("old", kT0 + 20'000, kT0 + 50'000).value());
    EXPECT_TRUE(tx.ClaimDue("new", kT0 + 40'000, kT0 + 70'000, 10)->empty());
  });
  // Expired: the next claim takes it over.
  std::vector<DeliveryJob> taken;
  W([&](Txn& tx) { taken = tx.ClaimDue("new", kT0 + 50'001, kT0 + 80'000, 10).value(); });
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id, jobs[0].id);

  // The old owner's late writes are ignored and counted; its renewal says it lost everything.
  W([&](Txn& tx) {
    EXPECT_EQ(tx.RecordOutcomes("old", {MakeOutcome(jobs[0], DeliveryStatus::kDead, kT0 + 50'002)})
                  .value(),
              std::vector<std::size_t>{0});
    EXPECT_EQ(tx.ReleaseLeases("old", {jobs[0].id}).value(), 1);
    EXPECT_FALSE(tx.RenewLease("old", kT0 + 50'003, kT0 + 80'003).value());
    EXPECT_TRUE(tx.RenewLease("old", kT0 + 50'004, kT0 + 80'004).value()) << "a fresh lease";
  });
  auto v = Deliveries(a, jobs[0].event_id);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].status, DeliveryStatus::kPending) << "the stale outcome changed nothing";
  EXPECT_TRUE(v[0].attempts.empty());

  // The new owner's outcome counts.
  W([&](Txn& tx) {
    EXPECT_EQ(
        tx.RecordOutcomes("new", {MakeOutcome(taken[0], DeliveryStatus::kSucceeded, kT0 + 50'010)})
            .value()
            .size(),
        0u);
  });
  v = Deliveries(a, jobs[0].event_id);
  EXPECT_EQ(v[0].status, DeliveryStatus::kSucceeded);
  ASSERT_EQ(v[0].attempts.size(), 1u);
}

// Shared databases: processes that claim together split the subscriptions with work between
// them (a fair share each) rather than the first claim taking every endpoint. One process alone
// takes them all.
TEST_P(StoreConformance, ClaimsSplitSubscriptionsFairly) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  std::vector<SubscriptionId> subs;
  subs.reserve(4);
  for (int i = 0; i < 4; ++i) subs.push_back(NewUnorderedSubscription(a, c.id).id);
  for (int i = 0; i < 3; ++i) Publish(MakeEvent(a, i, kT0 + i), subs, "");
  std::vector<DeliveryJob> first;
  std::vector<DeliveryJob> second;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RenewLease("w1", kT0, kT0 + 30'000).value());  // registers: nothing lost
    ASSERT_TRUE(tx.RenewLease("w2", kT0, kT0 + 30'000).value());
    first = tx.ClaimDue("w1", kT0 + 100, kT0 + 30'000, 100).value();
  });
  W([&](Txn& tx) { second = tx.ClaimDue("w2", kT0 + 100, kT0 + 30'000, 100).value(); });
  auto subs_of = [](const std::vector<DeliveryJob>& jobs) {
    std::set<std::int64_t> out;
    for (const auto& j : jobs) out.insert(j.subscription.value);
    return out;
  };
  EXPECT_EQ(first.size() + second.size(), 12u) << "every row claimed by one of them";
  auto s1 = subs_of(first);
  auto s2 = subs_of(second);
  for (auto id : s1) EXPECT_EQ(s2.count(id), 0u) << "subscription " << id << " in both";
  if (GetParam().shared) {
    EXPECT_EQ(s1.size(), 2u);
    EXPECT_EQ(s2.size(), 2u);
  } else {
    EXPECT_EQ(s1.size(), 4u) << "one process owns the database";
  }
}

// A process that joins later gets endpoints: an owner with more than its fair share gives up
// idle subscriptions (none of their rows leased to it), never busy ones.
TEST_P(StoreConformance, OwnersShedIdleSubscriptionsBeyondTheirShare) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  std::vector<SubscriptionId> subs;
  subs.reserve(4);
  for (int i = 0; i < 4; ++i) subs.push_back(NewUnorderedSubscription(a, c.id).id);
  Publish(MakeEvent(a, 1, kT0), subs, "");
  std::vector<DeliveryJob> mine;
  W([&](Txn& tx) { mine = tx.ClaimDue("w1", kT0 + 100, kT0 + 30'000, 100).value(); });
  ASSERT_EQ(mine.size(), 4u) << "alone: every subscription";
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RenewLease("w2", kT0 + 200, kT0 + 30'000).value());  // w2 joins
    // Busy (a row still leased to w1): nothing is given up.
    EXPECT_EQ(tx.ShedSubscriptions("w1", kT0 + 200, subs).value(), 0);
    ASSERT_EQ(tx.ReleaseLeases("w1", {mine[0].id, mine[1].id, mine[2].id, mine[3].id}).value(), 0);
    if (GetParam().shared) {
      EXPECT_TRUE(tx.ClaimDue("w2", kT0 + 300, kT0 + 30'000, 100)->empty()) << "all w1's";
    }
  });
  int shed = 0;
  W([&](Txn& tx) { shed = tx.ShedSubscriptions("w1", kT0 + 400, subs).value(); });
  std::vector<DeliveryJob> theirs;
  W([&](Txn& tx) { theirs = tx.ClaimDue("w2", kT0 + 500, kT0 + 30'000, 100).value(); });
  if (GetParam().shared) {
    EXPECT_EQ(shed, 2);
    EXPECT_EQ(theirs.size(), 2u);
  } else {
    EXPECT_EQ(shed, 0) << "one process owns the database";
  }
}

// After a commit of unknown outcome, a process gives back the rows leased to it that it does
// not hold, leased before a time; rows it holds, and rows leased later, stay.
TEST_P(StoreConformance, ReleaseUnheldGivesBackOnlyStrayRows) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  auto held = Publish(MakeEvent(a, 1, kT0), {s.id}, "p", kT0 + 30'000);
  auto stray = Publish(MakeEvent(a, 2, kT0 + 1), {s.id}, "p", kT0 + 30'001);
  auto later = Publish(MakeEvent(a, 3, kT0 + 2), {s.id}, "p", kT0 + 60'000);
  W([&](Txn& tx) {
    EXPECT_EQ(tx.ReleaseUnheld("p", kT0 + 30'500, {held[0].id}).value(), 1);
    EXPECT_EQ(tx.ReleaseUnheld("p", kT0 + 30'500, {held[0].id}).value(), 0) << "done already";
  });
  std::vector<DeliveryJob> claimed;
  W([&](Txn& tx) { claimed = tx.ClaimDue("p", kT0 + 100, kT0 + 90'000, 10).value(); });
  ASSERT_EQ(claimed.size(), 1u) << "only the stray row was given back";
  EXPECT_EQ(claimed[0].id, stray[0].id);
  (void)later;
}

// ReleaseOwner (SIGTERM) hands everything back at once: another process claims it without
// waiting for the lease.
TEST_P(StoreConformance, ReleaseOwnerHandsEverythingBack) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  auto j1 = Publish(MakeEvent(a, 1, kT0), {s.id}, "leaving", kT0 + 30'000);
  auto j2 = Publish(MakeEvent(a, 2, kT0 + 1), {s.id}, "leaving", kT0 + 30'000);
  W([&](Txn& tx) { EXPECT_TRUE(tx.ClaimDue("staying", kT0 + 10, kT0 + 30'000, 10)->empty()); });
  W([&](Txn& tx) { ASSERT_TRUE(tx.ReleaseOwner("leaving").has_value()); });
  W([&](Txn& tx) { EXPECT_EQ(tx.ClaimDue("staying", kT0 + 20, kT0 + 30'000, 10)->size(), 2u); });
  // Whatever it still sends afterwards is fenced off.
  W([&](Txn& tx) {
    EXPECT_EQ(
        tx.RecordOutcomes("leaving", {MakeOutcome(j1[0], DeliveryStatus::kSucceeded, kT0 + 30)})
            .value()
            .size(),
        1u);
  });
  EXPECT_EQ(Deliveries(a, j2[0].event_id)[0].status, DeliveryStatus::kPending);
}

// Failure streaks are a counter (no cost that grows with the attempt history): failures since
// the last success, across batches.
TEST_P(StoreConformance, FailureStreakCountsAcrossBatches) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  std::vector<DeliveryJob> jobs;
  for (int i = 0; i < 6; ++i) {
    auto j = Publish(MakeEvent(a, 100 + i, kT0 + i), {s.id});
    jobs.push_back(j[0]);
  }
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher,
                          {MakeOutcome(jobs[0], DeliveryStatus::kFailed, kT0 + 10, kT0 + 99),
                           MakeOutcome(jobs[1], DeliveryStatus::kDead, kT0 + 11)})
            .has_value());
  });
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[2], DeliveryStatus::kDead, kT0 + 12)})
            .has_value());
    auto streak = tx.GetFailureStreak(a, s.id).value();
    EXPECT_EQ(streak.failing_since, kT0 + 10);
    EXPECT_EQ(streak.attempts, 3);
  });
  W([&](Txn& tx) {
    // A success then a failure in one batch: the streak is that one failure.
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[3], DeliveryStatus::kSucceeded, kT0 + 20),
                                       MakeOutcome(jobs[4], DeliveryStatus::kDead, kT0 + 21)})
            .has_value());
    auto streak = tx.GetFailureStreak(a, s.id).value();
    EXPECT_EQ(streak.failing_since, kT0 + 21);
    EXPECT_EQ(streak.attempts, 1);
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[5], DeliveryStatus::kSucceeded, kT0 + 30)})
            .has_value());
    streak = tx.GetFailureStreak(a, s.id).value();
    EXPECT_FALSE(streak.failing_since);
    EXPECT_EQ(streak.attempts, 0);
  });
}

// Changes to subscriptions, clients and keys are announced by tenant (other processes drop what
// they cached); attempts and outcomes are not changes.
TEST_P(StoreConformance, ChangedTenantsFollowsConfigurationChanges) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  std::int64_t v0 = 0;
  R([&](Txn& tx) {
    auto r = tx.ChangedTenants(0).value();
    EXPECT_TRUE(r.tenants.empty());
    v0 = r.version;
  });
  EXPECT_GT(v0, 0);
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, kT0 + 1)})
            .has_value());
  });
  R([&](Txn& tx) { EXPECT_TRUE(tx.ChangedTenants(v0).value().tenants.empty()); });

  s.url = "https://receiver.example/v2";
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  std::int64_t v1 = 0;
  R([&](Txn& tx) {
    auto r = tx.ChangedTenants(v0).value();
    ASSERT_EQ(r.tenants.size(), 1u);
    EXPECT_EQ(r.tenants[0], a);
    EXPECT_GT(r.version, v0);
    v1 = r.version;
    EXPECT_TRUE(tx.ChangedTenants(v1).value().tenants.empty());
  });
  Client cb = NewClient(b, "crm");
  cb.billing_details_allowed = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateClient(cb).value()); });
  std::int64_t v2 = 0;
  R([&](Txn& tx) {
    auto r = tx.ChangedTenants(v1).value();
    ASSERT_EQ(r.tenants.size(), 1u);
    EXPECT_EQ(r.tenants[0], b);
    v2 = r.version;
  });
  W([&](Txn& tx) {
    ApiKey k;
    k.tenant = a;
    k.token_hash = "h";
    k.prefix = "obt_";
    k = tx.CreateApiKey(k).value();
    ASSERT_TRUE(tx.RevokeApiKey(a, k.id, kT0).value());
    ASSERT_TRUE(tx.DisableSubscription(a, s.id, "gone", kT0).value());
  });
  R([&](Txn& tx) {
    auto r = tx.ChangedTenants(v2).value();
    ASSERT_EQ(r.tenants.size(), 1u);
    EXPECT_EQ(r.tenants[0], a);
  });
}

// Key rotation: with NEW,OLD the store opens what OLD sealed and seals it again with NEW in the
// background; afterwards NEW alone opens everything, and OLD alone is refused at start-up.
TEST_P(StoreConformance, SecretsKeyRotationResealsInTheBackground) {
  const std::string old_key = core::SecretBox::NewBase64Key();
  const std::string new_key = core::SecretBox::NewBase64Key();
  OpenOptions with_old;
  with_old.secrets_keys = {old_key};
  Reopen(with_old);
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);

  OpenOptions rotating;
  rotating.secrets_keys = {new_key, old_key};
  Reopen(rotating);
  EXPECT_EQ(GetSub(a, s.id)->secret, s.secret) << "OLD still opens";
  // The background pass; run here too, so the test does not wait for it.
  W([&](Txn& tx) {
    std::int64_t after = 0;
    for (int i = 0; i < 100; ++i) {
      auto next = tx.ResealSecrets(after, 10).value();
      if (!next) break;
      after = *next;
    }
  });

  OpenOptions with_new;
  with_new.secrets_keys = {new_key};
  Reopen(with_new);
  auto got = GetSub(a, s.id);
  EXPECT_EQ(got->secret, s.secret);
  EXPECT_EQ(got->headers, s.headers);
  store_->Close();
  store_.reset();
  auto refused = GetParam().open(dir_.path(), with_old);
  ASSERT_FALSE(refused.has_value()) << "a database sealed with NEW opened with OLD only";
  EXPECT_EQ(refused.error().code, "secrets_key_mismatch");
  Open(with_new);
}

TEST_P(StoreConformance, ConcurrentClaimsNeverShareARow) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  W([&](Txn& tx) {
    for (int i = 0; i < 200; ++i) {
      auto e = MakeEvent(a, i, kT0 + i);
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      // No owner (an `api`-only process): nothing leased, nothing returned.
      auto jobs = tx.InsertDeliveries({NewDelivery{a, e.record.event_id, s.id, "{}", kT0 + i}}, "",
                                      kT0, kT0)
                      .value();
      EXPECT_TRUE(jobs.empty());
    }
  });
  std::mutex mu;
  std::vector<std::int64_t> claimed;
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (;;) {
        std::vector<DeliveryJob> jobs;
        auto st = store_->Write([&](Txn& tx) -> Status {
          auto r = tx.ClaimDue("owner-" + std::to_string(t), kT0 + 10'000, kT0 + 60'000, 7);
          if (!r) return core::Fail(r.error());
          jobs = *r;
          return {};
        });
        ASSERT_TRUE(st.has_value());
        if (jobs.empty()) return;
        std::lock_guard<std::mutex> lock(mu);
        for (auto& j : jobs) claimed.push_back(j.id.value);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::sort(claimed.begin(), claimed.end());
  EXPECT_EQ(claimed.size(), 200u);
  EXPECT_EQ(std::adjacent_find(claimed.begin(), claimed.end()), claimed.end());
}

TEST_P(StoreConformance, RecordOutcomesEffects) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  auto j1 = Publish(MakeEvent(a, 1, kT0), {s.id, s2.id});
  auto j2 = Publish(MakeEvent(a, 2, kT0 + 1), {s.id});

  // Failures: failing_since is the first failure and stays.
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher,
                          {MakeOutcome(j1[0], DeliveryStatus::kFailed, kT0 + 100, kT0 + 5100),
                           MakeOutcome(j2[0], DeliveryStatus::kFailed, kT0 + 150, kT0 + 5150),
                           MakeOutcome(j1[1], DeliveryStatus::kDead, kT0 + 120)})
            .has_value());
  });
  auto sub = GetSub(a, s.id);
  EXPECT_EQ(sub->failing_since, kT0 + 100);
  EXPECT_FALSE(sub->last_success_at);
  EXPECT_EQ(GetSub(a, s2.id)->failing_since, kT0 + 120);
  auto v = Deliveries(a, j1[0].event_id);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].status, DeliveryStatus::kFailed);
  EXPECT_EQ(v[0].next_attempt_at, kT0 + 5100);
  ASSERT_EQ(v[0].attempts.size(), 1u);
  EXPECT_EQ(v[0].attempts[0].http_status, 500);
  EXPECT_EQ(v[0].attempts[0].error, "http_500");
  EXPECT_EQ(v[0].last_delivery_id, v[0].attempts[0].delivery_id);
  EXPECT_EQ(v[1].status, DeliveryStatus::kDead);
  EXPECT_FALSE(v[1].next_attempt_at);

  // The failed ones are unleased and due at their next attempt.
  R([&](Txn& tx) { EXPECT_EQ(tx.NextDueAt().value(), kT0 + 5100); });
  std::vector<DeliveryJob> retry;
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 + 5000, kT0 + 9000, 10)->empty());
    retry = tx.ClaimDue(kPublisher, kT0 + 5100, kT0 + 9000, 10).value();
  });
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ(retry[0].attempts, 1);
  EXPECT_EQ(retry[0].cycle_attempts, 1);

  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(retry[0], DeliveryStatus::kSucceeded,
                                                           kT0 + 5200, std::nullopt, 2)})
                    .has_value());
  });
  sub = GetSub(a, s.id);
  EXPECT_EQ(sub->last_success_at, kT0 + 5200);
  EXPECT_FALSE(sub->failing_since);
  v = Deliveries(a, j1[0].event_id);
  EXPECT_EQ(v[0].status, DeliveryStatus::kSucceeded);
  EXPECT_FALSE(v[0].next_attempt_at);
  ASSERT_EQ(v[0].attempts.size(), 2u);
  EXPECT_EQ(v[0].attempts[0].attempt, 1);  // oldest first
  EXPECT_EQ(v[0].attempts[1].attempt, 2);
  EXPECT_EQ(v[0].last_delivery_id, v[0].attempts[1].delivery_id);

  // In one batch: a success then a failure leaves failing_since at that failure.
  W([&](Txn& tx) {
    auto more = tx.ClaimDue(kPublisher, kT0 + 6000, kT0 + 9000, 10).value();
    ASSERT_EQ(more.size(), 1u);  // j2's delivery
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(more[0], DeliveryStatus::kFailed,
                                                           kT0 + 7000, kT0 + 9999, 2)})
                    .has_value());
  });
  sub = GetSub(a, s.id);
  EXPECT_EQ(sub->failing_since, kT0 + 7000);
  EXPECT_EQ(sub->last_success_at, kT0 + 5200);

  // Client filter on GetDeliveries; other tenants see nothing.
  Client other = NewClient(a, "crm");
  EXPECT_TRUE(Deliveries(a, j1[0].event_id, other.id).empty());
  EXPECT_EQ(Deliveries(a, j1[0].event_id, c.id).size(), 2u);
  TenantId b = NewTenant("b");
  EXPECT_TRUE(Deliveries(b, j1[0].event_id).empty());
}

// One batch of every kind of outcome, as a dispatcher's write carries them (PostgreSQL records
// a batch in a few statements, SQLite row by row: the same rows must come out). In batch order:
// a fresh failure, an outcome for a row another owner holds, a failure of a delivery cancelled
// while in flight, a test delivery's failure, a success, an outcome naming the wrong tenant, a
// failure with no next time given, a success of a cancelled delivery, a second outcome for a row
// already recorded in the batch.
TEST_P(StoreConformance, RecordOutcomesBatchOfEveryKind) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s1 = NewUnorderedSubscription(a, c.id);
  Subscription s2 = NewUnorderedSubscription(a, c.id);  // disabled: its deliveries cancelled
  Subscription s3 = NewUnorderedSubscription(a, c.id);  // its delivery leased by another owner
  Subscription s4 = NewUnorderedSubscription(a, c.id);  // a test delivery
  auto e1 = Publish(MakeEvent(a, 1, kT0), {s1.id, s2.id});
  auto e2 = Publish(MakeEvent(a, 2, kT0 + 1), {s1.id, s2.id});
  auto e3 = Publish(MakeEvent(a, 3, kT0 + 2), {s1.id});
  auto theirs = Publish(MakeEvent(a, 4, kT0 + 3), {s3.id}, "other");
  ASSERT_EQ(e1.size(), 2u);
  ASSERT_EQ(e2.size(), 2u);
  ASSERT_EQ(e3.size(), 1u);
  ASSERT_EQ(theirs.size(), 1u);
  const DeliveryJob& a1 = e1[0];
  const DeliveryJob& a2 = e2[0];
  const DeliveryJob& a3 = e3[0];
  const DeliveryJob& x1 = e1[1];
  const DeliveryJob& x2 = e2[1];
  Subscription off = *GetSub(a, s2.id);
  off.enabled = false;
  off.disabled_reason = "by hand";
  off.disabled_at = kT0 + 5;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(off).has_value()); });
  ASSERT_EQ(Deliveries(a, x1.event_id)[1].status, DeliveryStatus::kCancelled);
  const std::string test_id = "evt_" + ids_.Next(kT0 + 10);
  std::vector<DeliveryJob> tests;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertTestEvent(a, s4.id, test_id, "ordinavo.test", "{}", kT0 + 10).has_value());
    tests = tx.ClaimDue(kPublisher, kT0 + 20, kT0 + 60'000, 10).value();
  });
  ASSERT_EQ(tests.size(), 1u);
  ASSERT_TRUE(tests[0].test);

  Outcome wrong_tenant = MakeOutcome(a2, DeliveryStatus::kDead, kT0 + 114);
  wrong_tenant.tenant = b;
  Outcome test_failed = MakeOutcome(tests[0], DeliveryStatus::kFailed, kT0 + 105, kT0 + 7000);
  test_failed.test = true;
  Outcome quoted = MakeOutcome(a3, DeliveryStatus::kFailed, kT0 + 120);  // next: not given
  quoted.attempt.http_status = std::nullopt;
  quoted.attempt.error = R"(timeout "after" 5 s, \ {x,y} NULL)";
  quoted.attempt.response_snippet = std::nullopt;
  const std::vector<Outcome> batch = {
      MakeOutcome(a1, DeliveryStatus::kFailed, kT0 + 100, kT0 + 5100, 3),  // 0
      MakeOutcome(theirs[0], DeliveryStatus::kSucceeded, kT0 + 101),       // 1: stale
      MakeOutcome(x1, DeliveryStatus::kFailed, kT0 + 102, kT0 + 9000),     // 2: stays cancelled
      test_failed,                                                         // 3: dead
      MakeOutcome(a2, DeliveryStatus::kSucceeded, kT0 + 110, std::nullopt, 2),  // 4
      wrong_tenant,                                                             // 5: stale
      quoted,                                                                   // 6
      MakeOutcome(x2, DeliveryStatus::kSucceeded, kT0 + 125),                   // 7: succeeded
      MakeOutcome(a3, DeliveryStatus::kSucceeded, kT0 + 130),                   // 8: stale
  };
  const std::uint64_t stale_before = Counters::Read().stale_lease_writes;
  W([&](Txn& tx) {
    EXPECT_EQ(tx.RecordOutcomes(kPublisher, batch).value(), (std::vector<std::size_t>{1, 5, 8}));
  });
  EXPECT_EQ(Counters::Read().stale_lease_writes - stale_before, 3u);

  struct Row {
    const DeliveryJob* job;
    DeliveryStatus status;
    std::optional<UnixMs> next;
    std::int64_t attempts;  // the column: the last outcome's attempt number
    std::int64_t cycle_attempts;
    std::vector<std::int64_t> attempt_times;  // the delivery's attempts, oldest first
  };
  const std::vector<Row> expected = {
      {&a1, DeliveryStatus::kFailed, kT0 + 5100, 3, 1, {kT0 + 100}},
      {&theirs[0], DeliveryStatus::kPending, kT0 + 3, 0, 0, {}},
      {&x1, DeliveryStatus::kCancelled, std::nullopt, 1, 1, {kT0 + 102}},
      {&tests[0], DeliveryStatus::kDead, std::nullopt, 1, 1, {kT0 + 105}},
      {&a2, DeliveryStatus::kSucceeded, std::nullopt, 2, 1, {kT0 + 110}},
      {&a3, DeliveryStatus::kFailed, kT0 + 120, 1, 1, {kT0 + 120}},
      {&x2, DeliveryStatus::kSucceeded, std::nullopt, 1, 1, {kT0 + 125}},
  };
  for (const Row& want : expected) {
    SCOPED_TRACE("delivery row " + std::to_string(want.job->id.value));
    std::optional<DeliveryView> got;
    for (DeliveryView& v : Deliveries(a, want.job->event_id)) {
      if (v.id == want.job->id) got = std::move(v);
    }
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, want.status);
    EXPECT_EQ(got->next_attempt_at, want.next);
    std::vector<std::int64_t> times;
    for (const AttemptRecord& r : got->attempts) times.push_back(r.attempted_at);
    EXPECT_EQ(times, want.attempt_times);
    const std::string where = " FROM deliveries WHERE id = " + std::to_string(want.job->id.value);
    EXPECT_EQ(Sql("SELECT attempts" + where), want.attempts);
    EXPECT_EQ(Sql("SELECT cycle_attempts" + where), want.cycle_attempts);
    EXPECT_EQ(Sql("SELECT COUNT(*)" + where + " AND lease_owner IS NULL AND lease_until IS NULL"),
              want.job == &theirs[0] ? 0 : 1);
  }
  // The attempts rows: one per applied outcome, values as given, test flag from the row.
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM attempts"), 6);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM attempts WHERE test = 1"), 1);
  EXPECT_EQ(Sql("SELECT delivery_row_id FROM attempts WHERE test = 1"), tests[0].id.value);
  // In the batch's order.
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM attempts a JOIN attempts b ON b.id > a.id WHERE "
                "b.attempted_at < a.attempted_at"),
            0);
  std::optional<DeliveryView> q;
  for (DeliveryView& v : Deliveries(a, a3.event_id)) q = std::move(v);
  ASSERT_TRUE(q);
  ASSERT_EQ(q->attempts.size(), 1u);
  const AttemptRecord& qa = q->attempts[0];
  EXPECT_EQ(qa.delivery_id, quoted.attempt.delivery_id);
  EXPECT_EQ(qa.attempt, 1);
  EXPECT_FALSE(qa.http_status);
  EXPECT_EQ(qa.duration_ms, 12);
  EXPECT_EQ(qa.error, quoted.attempt.error);
  EXPECT_FALSE(qa.response_snippet);
  std::optional<AttemptRecord> first;
  for (const DeliveryView& v : Deliveries(a, a1.event_id)) {
    if (v.id == a1.id && v.attempts.size() == 1) first = v.attempts[0];
  }
  ASSERT_TRUE(first);
  EXPECT_EQ(first->attempt, 3);
  EXPECT_EQ(first->http_status, 500);
  EXPECT_EQ(first->error, "http_500");
  EXPECT_EQ(first->response_snippet, "ok");

  // s1 in time order: failure (100), success (110), failure (120); the stale success at 130
  // and the other tenant's outcome count for nothing.
  auto sub = GetSub(a, s1.id);
  EXPECT_EQ(sub->last_success_at, kT0 + 110);
  EXPECT_EQ(sub->failing_since, kT0 + 120);
  R([&](Txn& tx) { EXPECT_EQ(tx.GetFailureStreak(a, s1.id).value().attempts, 1); });
  // s2: a cancelled delivery's failure (102), then a success (125).
  sub = GetSub(a, s2.id);
  EXPECT_EQ(sub->last_success_at, kT0 + 125);
  EXPECT_FALSE(sub->failing_since);
  // s3 untouched; s4's test failure is no streak.
  EXPECT_FALSE(GetSub(a, s3.id)->last_success_at);
  EXPECT_FALSE(GetSub(a, s3.id)->failing_since);
  EXPECT_FALSE(GetSub(a, s4.id)->failing_since);

  // The fence held: the other owner's outcome still counts.
  W([&](Txn& tx) {
    EXPECT_TRUE(
        tx.RecordOutcomes("other", {MakeOutcome(theirs[0], DeliveryStatus::kSucceeded, kT0 + 140)})
            ->empty());
  });
  EXPECT_EQ(Deliveries(a, theirs[0].event_id)[0].status, DeliveryStatus::kSucceeded);
  EXPECT_EQ(GetSub(a, s3.id)->last_success_at, kT0 + 140);
}

TEST_P(StoreConformance, ListAttemptsNewestFirstFilteredAndPaged) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  std::vector<Outcome> outcomes;
  std::vector<std::string> events;
  for (int i = 0; i < 5; ++i) {
    auto e = MakeEvent(a, i, kT0 + i,
                       i == 4 ? EventType::kTargetImported : EventType::kAppointmentCompleted);
    auto jobs = Publish(e, {s.id});
    events.push_back(e.record.event_id);
    outcomes.push_back(
        MakeOutcome(jobs[0], i % 2 == 0 ? DeliveryStatus::kSucceeded : DeliveryStatus::kFailed,
                    kT0 + UnixMs{1000} * i, kT0 + 100'000));
  }
  W([&](Txn& tx) { ASSERT_TRUE(tx.RecordOutcomes(kPublisher, outcomes).has_value()); });
  R([&](Txn& tx) {
    auto p1 = tx.ListAttempts(a, s.id, AttemptFilter{}, Page{2, std::nullopt}).value();
    ASSERT_EQ(p1.rows.size(), 2u);
    EXPECT_EQ(p1.rows[0].event_id, events[4]);
    EXPECT_EQ(p1.rows[0].event_type, "target.imported");
    EXPECT_EQ(p1.rows[0].status, DeliveryStatus::kSucceeded);
    EXPECT_EQ(p1.rows[1].event_id, events[3]);
    EXPECT_EQ(p1.rows[1].status, DeliveryStatus::kFailed);
    EXPECT_EQ(p1.rows[1].attempt.attempted_at, kT0 + 3000);
    auto p2 = tx.ListAttempts(a, s.id, AttemptFilter{}, Page{2, p1.next}).value();
    auto p3 = tx.ListAttempts(a, s.id, AttemptFilter{}, Page{2, p2.next}).value();
    ASSERT_EQ(p3.rows.size(), 1u);
    EXPECT_EQ(p3.rows[0].event_id, events[0]);
    EXPECT_FALSE(p3.next);

    AttemptFilter f;
    f.status = DeliveryStatus::kFailed;
    EXPECT_EQ(tx.ListAttempts(a, s.id, f, Page{}).value().rows.size(), 2u);
    f = {};
    f.since = kT0 + 1000;
    f.until = kT0 + 3000;
    auto w = tx.ListAttempts(a, s.id, f, Page{}).value();
    ASSERT_EQ(w.rows.size(), 2u);
    EXPECT_EQ(w.rows[0].event_id, events[2]);
    EXPECT_TRUE(tx.ListAttempts(b, s.id, AttemptFilter{}, Page{}).value().rows.empty());
  });
}

TEST_P(StoreConformance, RedeliverAndRecover) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c1 = NewClient(a, "erp");
  Client c2 = NewClient(a, "crm");
  Subscription s1 = NewSubscription(a, c1.id);
  Subscription s2 = NewSubscription(a, c2.id);
  auto jobs = Publish(MakeEvent(a, 1, kT0), {s1.id, s2.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[0], DeliveryStatus::kDead, kT0 + 10),
                                       MakeOutcome(jobs[1], DeliveryStatus::kSucceeded, kT0 + 10)})
            .has_value());
  });
  const std::string& ev = jobs[0].event_id;
  auto reopened = [](Result<Txn::Redelivered> r) { return r.value().reopened; };
  W([&](Txn& tx) {
    EXPECT_EQ(reopened(tx.Redeliver(b, ev, std::nullopt, std::nullopt, kT0 + 20)), 0);
    EXPECT_EQ(reopened(tx.Redeliver(a, ev, std::nullopt, c1.id, kT0 + 20)), 1);
    EXPECT_EQ(reopened(tx.Redeliver(a, "evt_missing", std::nullopt, std::nullopt, kT0 + 20)), 0);
  });
  auto v = Deliveries(a, ev);
  EXPECT_EQ(v[0].status, DeliveryStatus::kPending);
  EXPECT_EQ(v[0].next_attempt_at, kT0 + 20);
  EXPECT_EQ(v[1].status, DeliveryStatus::kSucceeded);
  W([&](Txn& tx) {
    auto claimed = tx.ClaimDue(kPublisher, kT0 + 20, kT0 + 100, 10).value();
    ASSERT_EQ(claimed.size(), 1u);
    EXPECT_EQ(claimed[0].attempts, 1);        // keeps counting over cycles
    EXPECT_EQ(claimed[0].cycle_attempts, 0);  // a new cycle
    // Held by a process (queued or in flight): left as it is, counted apart (reopened under
    // the attempt, the attempt's outcome would close the new cycle). Seen failing when
    // Redeliver reopened held rows too.
    const Txn::Redelivered held = tx.Redeliver(a, ev, s1.id, std::nullopt, kT0 + 25).value();
    EXPECT_EQ(held.reopened, 0);
    EXPECT_EQ(held.in_flight, 1);
    if (GetParam().name != "Sqlite") {
      // PostgreSQL: a process whose lease ran out (kT0 + 60,000: the publish's) is gone: its
      // rows are reopened (before its lease is taken back by a claim), not left waiting for an
      // attempt that will not end. SQLite has one process, which let go of every lease when it
      // started.
      const Txn::Redelivered gone = tx.Redeliver(a, ev, s1.id, std::nullopt, kT0 + 60'001).value();
      EXPECT_EQ(gone.reopened, 1);
      EXPECT_EQ(gone.in_flight, 0);
    }
    ASSERT_TRUE(tx.ReleaseLeases(kPublisher, {claimed[0].id}).has_value());
    EXPECT_EQ(reopened(tx.Redeliver(a, ev, s2.id, std::nullopt, kT0 + 30)), 1);
    const Txn::Redelivered both = tx.Redeliver(a, ev, std::nullopt, std::nullopt, kT0 + 40).value();
    EXPECT_EQ(both.reopened, 2);
    EXPECT_EQ(both.in_flight, 0);
  });

  // Recover: dead and cancelled deliveries of one subscription since a time.
  auto old = Publish(MakeEvent(a, 2, kT0 + 50), {s1.id});
  auto recent = Publish(MakeEvent(a, 3, kT0 + 5000), {s1.id});
  auto live = Publish(MakeEvent(a, 4, kT0 + 6000), {s1.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(old[0], DeliveryStatus::kDead, kT0 + 60),
                                   MakeOutcome(recent[0], DeliveryStatus::kDead, kT0 + 5010),
                                   MakeOutcome(live[0], DeliveryStatus::kSucceeded, kT0 + 6010)})
                    .has_value());
    EXPECT_EQ(tx.RecoverDeliveries(b, s1.id, kT0 + 1000, kT0 + 7000).value(), 0);
    EXPECT_EQ(tx.RecoverDeliveries(a, s1.id, kT0 + 1000, kT0 + 7000).value(), 1);
  });
  EXPECT_EQ(Deliveries(a, recent[0].event_id)[0].status, DeliveryStatus::kPending);
  EXPECT_EQ(Deliveries(a, old[0].event_id)[0].status, DeliveryStatus::kDead);
  EXPECT_EQ(Deliveries(a, live[0].event_id)[0].status, DeliveryStatus::kSucceeded);
}

// A disabled subscription's row goes in cancelled (NewDelivery::cancelled; fan-out does that,
// CONTRACT §6): no attempt, not leased, never claimed; `recover` re-queues it like a row a
// disable cancelled, and it is sent once the subscription is enabled. In one statement with an
// ordinary row of another subscription, and alone (SQLite's one-row insert); the events have no
// target, so nothing else asks for the statement that carries the status. Seen failing with a
// chunk of cancelled rows sent to the statement that writes 'pending' (the claim took them).
TEST_P(StoreConformance, ARowInsertedCancelledWaitsForRecover) {
  TenantId a = NewTenant("a");
  Client c1 = NewClient(a, "erp");
  Subscription on = NewSubscription(a, c1.id);
  Subscription off = NewSubscription(a, c1.id, /*enabled=*/false);
  StoredEvent e = MakeEvent(a, std::nullopt, kT0 + 100);
  StoredEvent alone = MakeEvent(a, std::nullopt, kT0 + 110);
  std::vector<DeliveryJob> jobs;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvent(e).has_value());
    ASSERT_TRUE(tx.InsertEvent(alone).has_value());
    NewDelivery sent{a, e.record.event_id, on.id, R"({"targetId":null})", kT0 + 100};
    NewDelivery missed{a, e.record.event_id, off.id, R"({"targetId":null})", kT0 + 100};
    missed.cancelled = true;
    auto r = tx.InsertDeliveries({sent, missed}, kPublisher, kT0 + 100, kT0 + 60'000);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    jobs = *r;
    NewDelivery only{a, alone.record.event_id, off.id, R"({"targetId":null})", kT0 + 110};
    only.cancelled = true;
    auto none = tx.InsertDeliveries({only}, kPublisher, kT0 + 110, kT0 + 60'000);
    ASSERT_TRUE(none.has_value()) << none.error().message;
    EXPECT_TRUE(none->empty()) << "a cancelled row is not leased";
  });
  ASSERT_EQ(jobs.size(), 1u) << "the cancelled row is not leased";
  EXPECT_EQ(jobs[0].subscription, on.id);
  auto v = Deliveries(a, e.record.event_id);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1].subscription, off.id);
  EXPECT_EQ(v[1].status, DeliveryStatus::kCancelled);
  EXPECT_FALSE(v[1].next_attempt_at.has_value());
  EXPECT_TRUE(v[1].attempts.empty());
  auto w = Deliveries(a, alone.record.event_id);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].status, DeliveryStatus::kCancelled);
  EXPECT_FALSE(w[0].next_attempt_at.has_value());
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.ReleaseLeases(kPublisher, {jobs[0].id}).has_value());
    auto claimed = tx.ClaimDue(kPublisher, kT0 + 200, kT0 + 60'000, 10).value();
    ASSERT_EQ(claimed.size(), 1u) << "the enabled subscription's row alone";
    EXPECT_EQ(claimed[0].subscription, on.id);
  });
  // Enabled again, then recovered since before the events: re-queued, claimed, the same events.
  W([&](Txn& tx) {
    Subscription back = *tx.GetSubscription(a, off.id).value();
    back.enabled = true;
    ASSERT_TRUE(tx.UpdateSubscription(back).has_value());
    EXPECT_EQ(tx.RecoverDeliveries(a, off.id, kT0, kT0 + 300).value(), 2);
  });
  EXPECT_EQ(Deliveries(a, e.record.event_id)[1].status, DeliveryStatus::kPending);
  W([&](Txn& tx) {
    auto claimed = tx.ClaimDue(kPublisher, kT0 + 300, kT0 + 60'000, 10).value();
    ASSERT_EQ(claimed.size(), 2u);
    std::set<std::string> events;
    for (const DeliveryJob& j : claimed) {
      EXPECT_EQ(j.subscription, off.id);
      EXPECT_EQ(j.attempts, 0);
      events.insert(j.event_id);
    }
    EXPECT_EQ(events, (std::set<std::string>{e.record.event_id, alone.record.event_id}));
  });
}

// A recover of more rows than one chunk (RecoverInChunks, issue 8): every dead and cancelled
// row of the subscription created since `since` is re-queued, the count is exact, and nothing
// else changes (older rows, other statuses, other subscriptions, other tenants).
TEST_P(StoreConformance, RecoverInChunksRequeuesEveryDeadAndCancelledRowExactly) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a, "erp");
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  const UnixMs since = kT0 + 1000;
  auto dead_of = [&](const std::vector<DeliveryJob>& jobs, UnixMs at) {
    std::vector<Outcome> o;
    o.reserve(jobs.size());
    for (const auto& job : jobs) o.push_back(MakeOutcome(job, DeliveryStatus::kDead, at));
    W([&](Txn& tx) { ASSERT_TRUE(tx.RecordOutcomes(kPublisher, o).has_value()); });
  };
  // Before `since`: dead, stays dead.
  auto old = Publish(MakeEvent(a, std::nullopt, kT0 + 10), {s1.id});
  dead_of(old, kT0 + 20);
  // Six open rows of s1, cancelled by the disable; recovered (a disabled subscription's rows
  // are re-queued as before; they wait for it to be enabled).
  std::vector<std::string> cancelled;
  cancelled.reserve(6);
  for (int i = 0; i < 6; ++i) {
    cancelled.push_back(Publish(MakeEvent(a, std::nullopt, since + i), {s1.id})[0].event_id);
  }
  W([&](Txn& tx) { EXPECT_TRUE(tx.DisableSubscription(a, s1.id, "manual", since + 50).value()); });
  // 19 dead rows of s1, each event also delivered (and dead) to s2, which is not recovered.
  std::vector<std::string> dead;
  for (int i = 0; i < 19; ++i) {
    auto jobs = Publish(MakeEvent(a, std::nullopt, since + 100 + i), {s1.id, s2.id});
    dead_of(jobs, since + 200 + i);
    dead.push_back(jobs[0].event_id);
  }
  // An open row and a succeeded row of s1: untouched.
  auto open = Publish(MakeEvent(a, std::nullopt, since + 300), {s1.id});
  auto done = Publish(MakeEvent(a, std::nullopt, since + 301), {s1.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(done[0], DeliveryStatus::kSucceeded, since + 310)})
                    .has_value());
  });

  const UnixMs now = kT0 + 9000;
  EXPECT_EQ(RecoverInChunks(*store_, b, s1.id, since, now, 4).value(), 0);  // another tenant
  std::vector<int> chunks;
  auto total =
      RecoverInChunks(*store_, a, s1.id, since, now, 4, [&](int n) { chunks.push_back(n); });
  ASSERT_TRUE(total.has_value()) << total.error().message;
  EXPECT_EQ(*total, 25);
  int sum = 0;
  for (int n : chunks) {
    EXPECT_LE(n, 4);
    sum += n;
  }
  EXPECT_EQ(sum, 25);
  EXPECT_GE(chunks.size(), 7u);  // 25 rows, 4 at a time
  for (const auto& list : {dead, cancelled}) {
    for (const auto& ev : list) {
      auto v = Deliveries(a, ev);
      ASSERT_FALSE(v.empty());
      EXPECT_EQ(v[0].subscription, s1.id);
      EXPECT_EQ(v[0].status, DeliveryStatus::kPending) << ev;
      EXPECT_EQ(v[0].next_attempt_at, now);
      if (v.size() > 1) {
        EXPECT_EQ(v[1].status, DeliveryStatus::kDead);  // s2's
      }
    }
  }
  EXPECT_EQ(Deliveries(a, old[0].event_id)[0].status, DeliveryStatus::kDead);
  EXPECT_EQ(Deliveries(a, open[0].event_id)[0].status, DeliveryStatus::kPending);
  EXPECT_EQ(Deliveries(a, open[0].event_id)[0].next_attempt_at, since + 300);
  EXPECT_EQ(Deliveries(a, done[0].event_id)[0].status, DeliveryStatus::kSucceeded);
  // Calling again (after a stop midway, say) re-queues only what is dead or cancelled again.
  EXPECT_EQ(RecoverInChunks(*store_, a, s1.id, since, now + 1, 4).value(), 0);
  // The one-transaction form counts the same.
  dead_of({Publish(MakeEvent(a, std::nullopt, since + 400), {s1.id})}, since + 410);
  W([&](Txn& tx) { EXPECT_EQ(tx.RecoverDeliveries(a, s1.id, since, now + 2).value(), 1); });
}

// A recover is made of several transactions: a write submitted while it runs commits before the
// recover has finished, and what the first chunk re-queued is visible (committed) by then.
TEST_P(StoreConformance, RecoverInChunksLetsOtherWritesCommitBetweenChunks) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a, "erp");
  Subscription s = NewSubscription(a, c.id);
  std::vector<DeliveryJob> jobs;
  for (int i = 0; i < 12; ++i) {
    auto j = Publish(MakeEvent(a, std::nullopt, kT0 + 10 + i), {s.id});
    jobs.push_back(j[0]);
  }
  std::vector<Outcome> o;
  o.reserve(jobs.size());
  for (const auto& job : jobs) o.push_back(MakeOutcome(job, DeliveryStatus::kDead, kT0 + 100));
  W([&](Txn& tx) { ASSERT_TRUE(tx.RecordOutcomes(kPublisher, o).has_value()); });

  int calls = 0;
  std::optional<TenantId> other;
  int pending_seen = -1;
  auto total = RecoverInChunks(*store_, a, s.id, kT0, kT0 + 500, 5, [&](int) {
    if (++calls != 1) return;
    // Another tenant's write, submitted while the recover is under way, commits now.
    other = NewTenant("other");
    pending_seen = 0;
    for (const auto& job : jobs) {
      if (Deliveries(a, job.event_id)[0].status == DeliveryStatus::kPending) ++pending_seen;
    }
  });
  ASSERT_TRUE(total.has_value()) << total.error().message;
  EXPECT_EQ(*total, 12);
  EXPECT_EQ(calls, 3);  // 5 + 5 + 2
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(pending_seen, 5);  // the first chunk alone was committed when the other write ran
  R([&](Txn& tx) { EXPECT_TRUE(tx.GetTenant(*other).value().has_value()); });
}

// --- disabling, operational webhooks, ordered claiming ---

TEST_P(StoreConformance, DisableSubscriptionCancelsOnceAndReportsTheStreak) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  auto j1 = Publish(MakeEvent(a, 1, kT0), {s.id});
  auto j2 = Publish(MakeEvent(a, 2, kT0 + 1), {s.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(j1[0], DeliveryStatus::kFailed, kT0 + 10, kT0 + 99),
                                   MakeOutcome(j2[0], DeliveryStatus::kDead, kT0 + 20)})
                    .has_value());
    auto streak = tx.GetFailureStreak(a, s.id).value();
    EXPECT_TRUE(streak.enabled);
    EXPECT_EQ(streak.failing_since, kT0 + 10);
    EXPECT_EQ(streak.attempts, 2);
    EXPECT_FALSE(tx.GetFailureStreak(b, s.id).value().enabled);
    EXPECT_FALSE(tx.DisableSubscription(b, s.id, "nope", kT0 + 30).value());
    EXPECT_TRUE(tx.DisableSubscription(a, s.id, "endpoint answered 410 Gone", kT0 + 30).value());
    EXPECT_FALSE(tx.DisableSubscription(a, s.id, "again", kT0 + 40).value());
  });
  auto got = GetSub(a, s.id);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->enabled);
  EXPECT_EQ(got->disabled_reason, "endpoint answered 410 Gone");
  EXPECT_EQ(got->disabled_at, kT0 + 30);
  EXPECT_EQ(Deliveries(a, j1[0].event_id)[0].status, DeliveryStatus::kCancelled);
  EXPECT_EQ(Deliveries(a, j2[0].event_id)[0].status, DeliveryStatus::kDead);
}

TEST_P(StoreConformance, OperationsWebhookIsHiddenAndGetsOperationalEvents) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  Subscription ops;
  W([&](Txn& tx) {
    EXPECT_FALSE(tx.GetOperationsWebhook(a).value());
    EXPECT_FALSE(tx.InsertOperationalEvent(a, "evt_" + ids_.Next(kT0), "delivery.dead", "{}", kT0,
                                           "me", kT0 + 100)
                     .value());
    auto [created, is_new] =
        tx.PutOperationsWebhook(a, "https://ops.example/a", "whsec_b3BzIHNlY3JldA==", kT0).value();
    EXPECT_TRUE(is_new);
    EXPECT_TRUE(created.operations);
    auto [changed, again] =
        tx.PutOperationsWebhook(a, "https://ops.example/b", "whsec_other", kT0 + 1).value();
    EXPECT_FALSE(again);
    EXPECT_EQ(changed.id, created.id);
    ops = changed;
  });
  EXPECT_EQ(ops.url, "https://ops.example/b");
  EXPECT_EQ(ops.secret, "whsec_b3BzIHNlY3JldA==");  // a URL change keeps the secret
  std::string op_event = "evt_" + ids_.Next(kT0 + 5);
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.GetSubscription(a, ops.id).value());  // not an ordinary subscription
    auto list = tx.ListSubscriptions(a, std::nullopt, Page{}).value();
    ASSERT_EQ(list.rows.size(), 1u);
    EXPECT_EQ(list.rows[0].id, s.id);
    auto fanout = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(fanout.size(), 1u);
    EXPECT_EQ(fanout[0].first.id, s.id);
    EXPECT_EQ(tx.ListClients(a, Page{}).value().rows.size(), 1u);
    EXPECT_FALSE(tx.GetOperationsWebhook(b).value());
  });
  W([&](Txn& tx) {
    auto job = tx.InsertOperationalEvent(a, op_event, "subscription.disabled",
                                         R"({"subscriptionId":1})", kT0 + 5, "me", kT0 + 100)
                   .value();
    ASSERT_TRUE(job);
    EXPECT_EQ(job->subscription, ops.id);
    EXPECT_EQ(job->event_type, "subscription.disabled");
    EXPECT_EQ(job->data_json, R"({"subscriptionId":1})");
    EXPECT_FALSE(job->target_id);
  });
  R([&](Txn& tx) {
    EXPECT_TRUE(tx.ListEvents(a, EventFilter{}, Page{}).value().rows.empty());
    EXPECT_FALSE(tx.GetEvent(a, op_event).value());
  });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.DeleteOperationsWebhook(a).value());
    EXPECT_FALSE(tx.DeleteOperationsWebhook(a).value());
    EXPECT_FALSE(tx.GetOperationsWebhook(a).value());
  });
}

TEST_P(StoreConformance, OrderedSubscriptionsClaimOnlyTheHeadOfEachTarget) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription ordered = NewSubscription(a, c.id);  // ordered: true
  Subscription loose = NewSubscription(a, c.id);
  loose.ordered = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(loose).has_value()); });
  // Target 1: e1 (occurred first), e2; target 2: e3. e0 about target 1 is accepted last but
  // occurred before everything.
  auto e1 = MakeEvent(a, 1, kT0 + 10);
  auto e2 = MakeEvent(a, 1, kT0 + 20);
  auto e3 = MakeEvent(a, 2, kT0 + 30);
  auto j1 = Publish(e1, {ordered.id, loose.id});
  auto j2 = Publish(e2, {ordered.id, loose.id});
  auto j3 = Publish(e3, {ordered.id, loose.id});
  std::vector<DeliveryRowId> all;
  for (const auto* js : {&j1, &j2, &j3}) {
    for (const auto& j : *js) all.push_back(j.id);
  }
  auto claim = [&](UnixMs now) {
    std::vector<std::pair<std::string, SubscriptionId>> got;
    W([&](Txn& tx) {
      auto jobs = tx.ClaimDue(kPublisher, now, now + 1000, 100).value();
      std::vector<DeliveryRowId> ids;
      for (const auto& j : jobs) {
        got.emplace_back(j.event_id, j.subscription);
        ids.push_back(j.id);
      }
      ASSERT_TRUE(tx.ReleaseLeases(kPublisher, ids).has_value());
    });
    return got;
  };
  // Records an outcome for `job` as its claimer does: claims what is due at `claim_at` (the job
  // among it), records, gives the rest back.
  auto settle = [&](const DeliveryJob& job, DeliveryStatus status, UnixMs claim_at, UnixMs at,
                    std::optional<UnixMs> next) {
    W([&](Txn& tx) {
      auto jobs = tx.ClaimDue(kPublisher, claim_at, claim_at + 1000, 100).value();
      std::vector<DeliveryRowId> rest;
      bool found = false;
      for (const auto& j : jobs) {
        if (j.id == job.id) {
          found = true;
        } else {
          rest.push_back(j.id);
        }
      }
      ASSERT_TRUE(found);
      EXPECT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(job, status, at, next)})->empty());
      ASSERT_TRUE(tx.ReleaseLeases(kPublisher, rest).has_value());
    });
  };
  W([&](Txn& tx) { ASSERT_TRUE(tx.ReleaseLeases(kPublisher, all).has_value()); });
  auto got = claim(kT0 + 100);
  // loose: all three; ordered: e1 (head of target 1) and e3 (target 2), not e2.
  EXPECT_EQ(got.size(), 5u);
  for (const auto& [ev, sub] : got) {
    EXPECT_FALSE(ev == e2.record.event_id && sub == ordered.id) << "e2 released before e1";
  }
  // e1 fails and waits for its retry: e2 still waits.
  settle(j1[0], DeliveryStatus::kFailed, kT0 + 200, kT0 + 200, kT0 + 5000);
  for (const auto& [ev, sub] : claim(kT0 + 300)) {
    EXPECT_FALSE(sub == ordered.id && ev == e2.record.event_id);
  }
  // e1 goes dead: e2 is next.
  settle(j1[0], DeliveryStatus::kDead, kT0 + 5000, kT0 + 400, std::nullopt);
  bool e2_claimed = false;
  for (const auto& [ev, sub] : claim(kT0 + 500)) {
    if (sub == ordered.id && ev == e2.record.event_id) e2_claimed = true;
  }
  EXPECT_TRUE(e2_claimed);
  // A late event that occurred before e2 goes first.
  auto e0 = MakeEvent(a, 1, kT0 + 600);
  e0.record.occurred_at = kT0 - 5000;
  auto j0 = Publish(e0, {ordered.id});
  W([&](Txn& tx) { ASSERT_TRUE(tx.ReleaseLeases(kPublisher, {j0[0].id}).has_value()); });
  bool e0_claimed = false;
  for (const auto& [ev, sub] : claim(kT0 + 700)) {
    if (sub == ordered.id && ev == e0.record.event_id) e0_claimed = true;
    EXPECT_FALSE(sub == ordered.id && ev == e2.record.event_id) << "e2 before the earlier e0";
  }
  EXPECT_TRUE(e0_claimed);
}

// An ordered subscription's backlog on two targets (CONTRACT §6): a claim takes exactly the head
// of each target, whatever the backlog, and the next ones once the heads are settled. Target 1's
// events were accepted in the reverse of their occurredAtUtc order (its head is the last
// accepted); target 2's all occurred at one instant (its head is the first accepted). The rows
// wait unleased (a process that does not send), so that every one is a candidate of the claim.
// The check's cost per candidate is one index probe (SQLite's
// OrderedClaimCostDoesNotGrowWithTheBacklog, PostgreSQL's OrderedClaimReadsNoBacklogPerCandidate);
// seen failing with the rows' order not written by InsertDeliveries (all 100 claimed).
TEST_P(StoreConformance, OrderedBacklogClaimsTheHeadOfEachTarget) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription ordered = NewSubscription(a, c.id);  // ordered: true
  Subscription loose = NewUnorderedSubscription(a, c.id);
  constexpr int kBacklog = 2000;     // 1,000 per target
  std::vector<std::string> target1;  // by occurred_at
  std::vector<std::string> target2;  // by acceptance
  target1.resize(kBacklog / 2);
  W([&](Txn& tx) {
    for (int i = 0; i < kBacklog; ++i) {
      const bool first = i % 2 == 0;
      StoredEvent e = MakeEvent(a, first ? 1 : 2, kT0 + i);
      e.record.occurred_at = first ? kT0 - i : kT0;
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      if (first) {
        target1[static_cast<std::size_t>(kBacklog / 2 - 1 - i / 2)] = e.record.event_id;
      } else {
        target2.push_back(e.record.event_id);
      }
      std::vector<NewDelivery> rows{NewDelivery{a, e.record.event_id, ordered.id, "{}", kT0}};
      if (i < 10) rows.push_back(NewDelivery{a, e.record.event_id, loose.id, "{}", kT0});
      auto r = tx.InsertDeliveries(rows, "", kT0, kT0);
      ASSERT_TRUE(r.has_value()) << r.error().message;
    }
  });
  // Only the ordered subscription's rows carry an order: an unordered one's write no entry of
  // deliveries_ordered.
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE target_id IS NOT NULL AND "
                "subscription_id = " +
                std::to_string(loose.id.value)),
            0);
  auto claim = [&](UnixMs now) {
    std::vector<DeliveryJob> jobs;
    W([&](Txn& tx) { jobs = tx.ClaimDue(kPublisher, now, now + 60'000, 100).value(); });
    std::vector<DeliveryJob> mine;
    for (DeliveryJob& j : jobs) {
      if (j.subscription == ordered.id) mine.push_back(std::move(j));
    }
    std::sort(mine.begin(), mine.end(),
              [](const DeliveryJob& x, const DeliveryJob& y) { return x.target_id < y.target_id; });
    return mine;
  };
  for (std::size_t round = 0; round < 3; ++round) {
    std::vector<DeliveryJob> heads = claim(kT0 + 10 + static_cast<UnixMs>(round));
    ASSERT_EQ(heads.size(), 2u) << "round " << round;
    EXPECT_EQ(heads[0].event_id, target1[round]) << "round " << round;
    EXPECT_EQ(heads[1].event_id, target2[round]) << "round " << round;
    // The heads are settled (one succeeds, one goes dead): the next of each target is free.
    W([&](Txn& tx) {
      EXPECT_TRUE(tx.RecordOutcomes(kPublisher,
                                    {MakeOutcome(heads[0], DeliveryStatus::kSucceeded, kT0 + 20),
                                     MakeOutcome(heads[1], DeliveryStatus::kDead, kT0 + 20)})
                      ->empty());
    });
  }
}

// A subscription made ordered (PATCH) orders the deliveries it already has open: they were made
// without their event's order (the subscription was not ordered), and the change fills it in
// for its open rows in the same transaction. Seen failing without that fill (all 6 claimed).
TEST_P(StoreConformance, SubscriptionMadeOrderedOrdersItsOpenDeliveries) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  std::vector<std::string> events;
  W([&](Txn& tx) {
    for (int i = 0; i < 6; ++i) {
      StoredEvent e = MakeEvent(a, 1 + i % 2, kT0 + i);
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      events.push_back(e.record.event_id);
      ASSERT_TRUE(
          tx.InsertDeliveries({NewDelivery{a, e.record.event_id, s.id, "{}", kT0}}, "", kT0, kT0)
              .has_value());
    }
  });
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE target_id IS NOT NULL"), 0);
  s.ordered = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  std::vector<DeliveryJob> jobs;
  W([&](Txn& tx) { jobs = tx.ClaimDue(kPublisher, kT0 + 10, kT0 + 60'000, 100).value(); });
  std::vector<std::string> got;
  got.reserve(jobs.size());
  for (const DeliveryJob& j : jobs) got.push_back(j.event_id);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{events[0], events[1]}));
  // Made unordered again: everything open goes out in parallel.
  s.ordered = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  W([&](Txn& tx) { jobs = tx.ClaimDue(kPublisher, kT0 + 20, kT0 + 60'000, 100).value(); });
  EXPECT_EQ(jobs.size(), 4u);
}

// Rows reopened for an ordered subscription (recover, redeliver) take their place in their
// target's order, also rows closed before it was ordered (or before the migration that gave
// rows their order), which have none. Seen failing without the fill in RecoverDeliveriesStep
// (3 claimed) and in Redeliver (2 claimed).
TEST_P(StoreConformance, ReopenedDeliveriesOfAnOrderedSubscriptionKeepTheOrder) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  std::vector<DeliveryJob> jobs;
  for (int i = 0; i < 3; ++i) {
    auto js = Publish(MakeEvent(a, 7, kT0 + i), {s.id});
    jobs.push_back(js.at(0));
  }
  W([&](Txn& tx) {
    std::vector<Outcome> dead;
    dead.reserve(jobs.size());
    for (const DeliveryJob& j : jobs)
      dead.push_back(MakeOutcome(j, DeliveryStatus::kDead, kT0 + 5));
    EXPECT_TRUE(tx.RecordOutcomes(kPublisher, dead)->empty());
  });
  s.ordered = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  auto claim = [&](UnixMs now) {
    std::vector<std::string> got;
    W([&](Txn& tx) {
      const std::vector<DeliveryJob> claimed =
          tx.ClaimDue(kPublisher, now, now + 60'000, 100).value();
      for (const DeliveryJob& j : claimed) got.push_back(j.event_id);
    });
    return got;
  };
  W([&](Txn& tx) { EXPECT_EQ(tx.RecoverDeliveries(a, s.id, 0, kT0 + 10).value(), 3); });
  EXPECT_EQ(claim(kT0 + 10), (std::vector<std::string>{jobs[0].event_id}));
  // All three closed again (cancelled by a disable), then two redelivered, the later first.
  s.enabled = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  s.enabled = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  Sql("UPDATE deliveries SET target_id = NULL, occurred_at = NULL, event_row = NULL");
  W([&](Txn& tx) {
    EXPECT_EQ(tx.Redeliver(a, jobs[2].event_id, std::nullopt, std::nullopt, kT0 + 20)->reopened, 1);
    EXPECT_EQ(tx.Redeliver(a, jobs[1].event_id, std::nullopt, std::nullopt, kT0 + 20)->reopened, 1);
  });
  EXPECT_EQ(claim(kT0 + 30), (std::vector<std::string>{jobs[1].event_id}));
}

// SQLite migration 11 / PostgreSQL 9 give the open rows of ordered subscriptions their event's
// order, and only those: a database left by the release before (no columns, no index, the
// schema version before) is migrated when opened, and its ordered backlog is claimed head by
// head. Seen failing with the migration's UPDATE left out (all 3 claimed).
TEST_P(StoreConformance, MigrationOrdersTheOpenDeliveriesOfOrderedSubscriptions) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription ordered = NewSubscription(a, c.id);  // ordered: true
  Subscription loose = NewUnorderedSubscription(a, c.id);
  std::vector<DeliveryRowId> all;
  std::vector<std::string> events;
  for (int i = 0; i < 3; ++i) {
    StoredEvent e = MakeEvent(a, 5, kT0 + i);
    events.push_back(e.record.event_id);
    for (const DeliveryJob& j : Publish(e, {ordered.id, loose.id})) all.push_back(j.id);
  }
  W([&](Txn& tx) { ASSERT_TRUE(tx.ReleaseLeases(kPublisher, all).has_value()); });
  // The database as the release before left it (the migrations after it run again: they only
  // rebuild an index).
  Sql("DROP INDEX deliveries_ordered");
  for (const char* column : {"target_id", "occurred_at", "event_row"}) {
    Sql(std::string("ALTER TABLE deliveries DROP COLUMN ") + column);
  }
  if (GetParam().name == "Sqlite") {
    // And as SQLite's migrations 15 (held rows) and 13 (its targets' chains of events) found
    // it.
    Sql("DROP INDEX subscriptions_holding");
    Sql("DROP INDEX deliveries_held");
    Sql("DROP INDEX deliveries_due");
    Sql("ALTER TABLE deliveries DROP COLUMN held");
    Sql("CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status IN ('pending', "
        "'failed') AND lease_owner IS NULL");
    Sql("DROP INDEX events_target_start");
    Sql("ALTER TABLE events DROP COLUMN prev_target_row");
    Sql("ALTER TABLE targets DROP COLUMN last_event_row");
    Sql("CREATE INDEX events_target ON events(tenant_id, target_id, event_id)");
    Sql("PRAGMA user_version = 10");
  } else {
    // And as PostgreSQL's migration 11 (held rows) found it (dropping the column drops
    // deliveries_due and deliveries_due_subscription, whose predicates name it).
    Sql("DROP INDEX deliveries_held");
    Sql("ALTER TABLE deliveries DROP COLUMN held");
    Sql("CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status IN ('pending', "
        "'failed') AND lease_owner IS NULL");
    Sql("CREATE INDEX deliveries_due_subscription ON deliveries(subscription_id, "
        "next_attempt_at) WHERE status IN ('pending', 'failed') AND lease_owner IS NULL");
    Sql("DELETE FROM schema_migrations WHERE version >= 9");
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  auto with_order = [&](SubscriptionId sub) {
    return Sql(
        "SELECT COUNT(*) FROM deliveries WHERE target_id IS NOT NULL AND subscription_id = " +
        std::to_string(sub.value));
  };
  EXPECT_EQ(with_order(ordered.id), 3);
  EXPECT_EQ(with_order(loose.id), 0);
  std::vector<std::string> got;
  W([&](Txn& tx) {
    const std::vector<DeliveryJob> claimed =
        tx.ClaimDue(kPublisher, kT0 + 10, kT0 + 60'000, 100).value();
    for (const DeliveryJob& j : claimed) {
      if (j.subscription == ordered.id) got.push_back(j.event_id);
    }
  });
  EXPECT_EQ(got, (std::vector<std::string>{events[0]}));
}

// --- group commit ---

TEST_P(StoreConformance, GroupCommitRollsBackAFailingTaskAlone) {
  TenantId a = NewTenant("a");
  const CounterValues counted_before = Counters::Read();
  // Hold the writer so that the next tasks queue up and commit together.
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<Status> blocker_done;
  store_->Submit(WriteTask{[&](Txn&) -> Status {
                             started.set_value();
                             released.wait();
                             return {};
                           },
                           [&](const Status& s) { blocker_done.set_value(s); }});
  started.get_future().wait();

  constexpr int kTasks = 50;
  std::vector<std::promise<Status>> done(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    store_->Submit(WriteTask{[&, i](Txn& tx) -> Status {
                               Client c;
                               c.tenant = a;
                               c.name = "c" + std::to_string(i);
                               c.source_system = "sys" + std::to_string(i);
                               if (auto r = tx.CreateClient(c); !r) return core::Fail(r.error());
                               if (i == 17)
                                 return core::Fail(
                                     core::Error::Invalid("x", "nope", "task 17 fails"));
                               return {};
                             },
                             [&, i](const Status& s) { done[i].set_value(s); }});
  }
  EXPECT_GE(store_->QueueDepth(), static_cast<std::size_t>(kTasks));
  release.set_value();
  EXPECT_TRUE(blocker_done.get_future().get().has_value());
  for (int i = 0; i < kTasks; ++i) {
    Status s = done[i].get_future().get();
    if (i == 17) {
      ASSERT_FALSE(s);
      EXPECT_EQ(s.error().code, "nope");
    } else {
      EXPECT_TRUE(s.has_value()) << i;
    }
  }
  // GET /metrics (outbound_store_committed_tasks_total, outbound_store_commit_duration_seconds)
  // counts each task once, in the transaction that committed, not in the run that rolled back
  // when task 17 failed (SQLite runs the batch again with a savepoint per task).
  const CounterValues counted = Counters::Read();
  EXPECT_EQ(counted.committed_tasks - counted_before.committed_tasks, kTasks + 1u);
  EXPECT_GE(counted.commits - counted_before.commits, 2u);
  EXPECT_LT(counted.commits - counted_before.commits, kTasks + 1u) << "queued tasks share a commit";
  EXPECT_GE(counted.commit_sum_us - counted_before.commit_sum_us,
            counted.commits - counted_before.commits)
      << "a COMMIT takes time";
  R([&](Txn& tx) {
    auto list = tx.ListClients(a, Page{100, std::nullopt}).value();
    ASSERT_EQ(list.rows.size(), static_cast<std::size_t>(kTasks - 1));
    for (const auto& c : list.rows) EXPECT_NE(c.name, "c17");
  });
}

// The last task of a group commit fails in a statement the store had not run yet when the task
// returned (PostgreSQL sends a task's deferred statements, Stmt::RunLater, with its flush at the
// task's end): that task fails alone with its own error, the tasks before it in the transaction
// are stored once each, and the next write works. Here the statement is an event's insert, whose
// id is already stored (a unique key).
TEST_P(StoreConformance, GroupCommitsLastTaskFailingInADeferredStatementFailsAlone) {
  TenantId a = NewTenant("a");
  const StoredEvent taken = MakeEvent(a, std::nullopt, kT0);
  W([&](Txn& tx) { ASSERT_TRUE(tx.InsertEvent(taken).has_value()); });
  // Hold the writer so that the next tasks queue up and commit together; one key, so that
  // PostgreSQL runs them on one connection, in order.
  constexpr std::uint64_t kKey = 77;
  std::promise<void> release = HoldTheWriter(*store_, kKey);
  constexpr int kTasks = 5;
  std::vector<StoredEvent> events;
  events.reserve(kTasks);
  for (int i = 0; i < kTasks - 1; ++i) events.push_back(MakeEvent(a, std::nullopt, kT0 + 1 + i));
  events.push_back(taken);  // the last task's: a unique key already stored
  std::vector<std::promise<Status>> done(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    store_->Submit(WriteTask{[&, i](Txn& tx) -> Status { return tx.InsertEvent(events[i]); },
                             [&, i](const Status& s) { done[i].set_value(s); }, kKey});
  }
  release.set_value();
  for (int i = 0; i < kTasks; ++i) {
    const Status st = done[i].get_future().get();
    EXPECT_EQ(st.has_value(), i < kTasks - 1) << "task " << i;
  }
  R([&](Txn& tx) {
    for (int i = 0; i < kTasks; ++i) {
      auto e = tx.GetEvent(a, events[i].record.event_id);
      ASSERT_TRUE(e.has_value());
      EXPECT_TRUE(e->has_value()) << "event of task " << i;
    }
    auto listed = tx.ListEvents(a, EventFilter{}, Page{100, std::nullopt});
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(listed->rows.size(), static_cast<std::size_t>(kTasks)) << "each stored once";
  });
  const StoredEvent next = MakeEvent(a, std::nullopt, kT0 + 100);
  W([&](Txn& tx) { ASSERT_TRUE(tx.InsertEvent(next).has_value()); });
}

// How GET /metrics' outbound_store_commit_duration_seconds files a commit's time (the counts
// themselves: GroupCommitRollsBackAFailingTaskAlone). The counters are the process's:
// differences are asserted.
TEST_P(StoreConformance, CommitTimesLandInTheirBuckets) {
  // Each commit lands in the bucket of its time (le, in seconds: 0.00025, 0.0005, 0.001, ...).
  const CounterValues b0 = Counters::Read();
  Counters::Committed(3, std::chrono::microseconds(250));     // le=0.00025, the bound itself
  Counters::Committed(1, std::chrono::nanoseconds(250'500));  // just above: le=0.0005
  Counters::Committed(1, std::chrono::microseconds(700));     // le=0.001
  Counters::Committed(1, std::chrono::seconds(2));            // above the last bound (1 s)
  const CounterValues b1 = Counters::Read();
  EXPECT_EQ(b1.commit_buckets[0] - b0.commit_buckets[0], 1u);
  EXPECT_EQ(b1.commit_buckets[1] - b0.commit_buckets[1], 1u);
  EXPECT_EQ(b1.commit_buckets[2] - b0.commit_buckets[2], 1u);
  EXPECT_EQ(b1.commit_buckets[kCommitBucketsUs.size()] - b0.commit_buckets[kCommitBucketsUs.size()],
            1u);
  EXPECT_EQ(b1.committed_tasks - b0.committed_tasks, 6u);
  EXPECT_EQ(b1.commit_sum_us - b0.commit_sum_us, 250u + 250u + 700u + 2'000'000u);
}

// A task that fails alone in its transaction (SQLite runs a batch's tasks without a savepoint
// each until one fails, then rolls back and runs them again with one: issue 8) stores nothing of
// what it wrote, its neighbours are stored once each, and the next transaction works.
TEST_P(StoreConformance, GroupCommitAFailingTaskStoresNothingAndTheNextWriteWorks) {
  TenantId a = NewTenant("a");
  auto client = [&](Txn& tx, const std::string& name) -> Status {
    Client c;
    c.tenant = a;
    c.name = name;
    c.source_system = "sys-" + name;
    if (auto r = tx.CreateClient(c); !r) return core::Fail(r.error());
    return {};
  };
  // Alone: its writes before the failure are undone.
  auto failed = store_->Write([&](Txn& tx) -> Status {
    if (auto s = client(tx, "lost"); !s) return s;
    return core::Fail(core::Error::Invalid("x", "nope", "fails after a write"));
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, "nope");
  EXPECT_TRUE(store_->Write([&](Txn& tx) { return client(tx, "kept"); }).has_value());

  // In a batch: the tasks before the first failure (run again on SQLite) and those around the
  // second commit once each.
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  store_->Submit(WriteTask{[&](Txn&) -> Status {
                             started.set_value();
                             released.wait();
                             return {};
                           },
                           [](const Status&) {}});
  started.get_future().wait();
  constexpr int kTasks = 6;
  std::vector<std::promise<Status>> done(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    store_->Submit(WriteTask{[&, i](Txn& tx) -> Status {
                               if (auto s = client(tx, "b" + std::to_string(i)); !s) return s;
                               if (i == 2 || i == 4)
                                 return core::Fail(core::Error::Invalid("x", "nope", "fails"));
                               return {};
                             },
                             // A second call would throw (promise already satisfied).
                             [&, i](const Status& s) { done[i].set_value(s); }});
  }
  release.set_value();
  for (int i = 0; i < kTasks; ++i) {
    Status s = done[i].get_future().get();
    EXPECT_EQ(s.has_value(), i != 2 && i != 4) << i;
  }
  EXPECT_TRUE(store_->Write([&](Txn& tx) { return client(tx, "after"); }).has_value());
  R([&](Txn& tx) {
    std::multiset<std::string> names;
    for (const auto& c : tx.ListClients(a, Page{100, std::nullopt})->rows) names.insert(c.name);
    EXPECT_EQ(names, (std::multiset<std::string>{"kept", "b0", "b1", "b3", "b5", "after"}));
  });
}

TEST_P(StoreConformance, ExceptionInTaskIsAnError) {
  auto st = store_->Write([](Txn&) -> Status { throw std::runtime_error("boom"); });
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kInternal);
  EXPECT_TRUE(store_->Write([](Txn&) -> Status { return {}; }).has_value());
}

TEST_P(StoreConformance, SubmitOnAFullQueueAnswersUnavailable) {
  OpenOptions tiny;
  tiny.max_queue = 3;
  tiny.single_writer = true;
  Reopen(tiny);
  std::promise<void> started;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> ok{0};
  store_->Submit(WriteTask{[&](Txn&) -> Status {
                             started.set_value();
                             released.wait();
                             return {};
                           },
                           [&](const Status& s) { ok += s.has_value(); }});
  started.get_future().wait();  // the writer holds it: the queue is empty again
  for (int i = 0; i < 3; ++i) {
    store_->Submit(WriteTask{[](Txn&) -> Status { return {}; },
                             [&](const Status& s) { ok += s.has_value(); }});
  }
  EXPECT_EQ(store_->QueueDepth(), 4u);
  bool called = false;
  store_->Submit(WriteTask{[](Txn&) -> Status { return {}; },
                           [&](const Status& s) {
                             called = true;
                             ASSERT_FALSE(s);
                             EXPECT_EQ(s.error().kind, ErrorKind::kUnavailable);
                             EXPECT_EQ(s.error().code, "store_busy");
                           }});
  EXPECT_TRUE(called) << "done must run at once, on the caller's thread";
  release.set_value();
  store_->Close();  // drains
  EXPECT_EQ(ok.load(), 4);
  auto after = store_->Write([](Txn&) -> Status { return {}; });
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().kind, ErrorKind::kUnavailable);
  auto read = store_->Read([](Txn&) -> Status { return {}; });
  EXPECT_FALSE(read);
}

TEST_P(StoreConformance, CloseDrainsQueuedWrites) {
  TenantId a = NewTenant("a");
  std::atomic<int> ok{0};
  for (int i = 0; i < 300; ++i) {
    store_->Submit(WriteTask{[a, i](Txn& tx) -> Status {
                               Client c;
                               c.tenant = a;
                               c.name = std::to_string(i);
                               c.source_system = "s" + std::to_string(i);
                               auto r = tx.CreateClient(c);
                               if (!r) return core::Fail(r.error());
                               return {};
                             },
                             [&](const Status& s) { ok += s.has_value(); }});
  }
  Reopen();
  EXPECT_EQ(ok.load(), 300);
  R([&](Txn& tx) { EXPECT_EQ(tx.ListClients(a, Page{1000, std::nullopt})->rows.size(), 300u); });
}

// A client is named by its source system: one live client per system and tenant.
TEST_P(StoreConformance, OneLiveClientPerSourceSystem) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  auto create = [&](TenantId t, const char* system) {
    Client c;
    c.tenant = t;
    c.name = system;
    c.source_system = system;
    Result<Client> out = core::Fail(core::Error::Internal("not run"));
    (void)store_->Write([&](Txn& tx) -> Status {
      out = tx.CreateClient(c);
      return out ? Status() : Status(core::Fail(out.error()));
    });
    return out;
  };
  auto first = create(a, "erp");
  ASSERT_TRUE(first) << first.error().message;
  auto second = create(a, "erp");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(second.error().field, "sourceSystem");
  EXPECT_TRUE(create(b, "erp")) << "another tenant's client of the system does not count";
  EXPECT_TRUE(create(a, "crm"));
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteClient(a, first->id, kT0).value_or(false)); });
  EXPECT_TRUE(create(a, "erp")) << "a deleted client does not count";
}

TEST_P(StoreConformance, ReadsSeeASnapshotAndAreReadOnly) {
  TenantId a = NewTenant("a");
  NewClient(a);
  auto st = store_->Read([&](Txn& tx) -> Status {
    auto first = tx.ListClients(a, Page{}).value().rows.size();
    // A commit in the middle of the read is not seen by it.
    Client c;
    c.tenant = a;
    c.name = "later";
    c.source_system = "x";
    auto w =
        store_->Write([&](Txn& wtx) -> Status { return wtx.CreateClient(c).map([](auto&&) {}); });
    EXPECT_TRUE(w.has_value());
    EXPECT_EQ(tx.ListClients(a, Page{}).value().rows.size(), first);
    auto bad = tx.CreateTenant("nope", kT0);
    EXPECT_FALSE(bad) << "a read transaction cannot write";
    return {};
  });
  EXPECT_TRUE(st.has_value());
  R([&](Txn& tx) { EXPECT_EQ(tx.ListClients(a, Page{}).value().rows.size(), 2u); });
}

// A throughput sanity check: several threads submitting event + delivery writes at once, as API
// handlers do, so that group commit can batch them. It asserts correctness only; the rate is
// printed for the curious (timing depends on the machine and its load).
TEST_P(StoreConformance, ThroughputSanity) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2500;
  constexpr int kTotal = kThreads * kPerThread;
  std::vector<StoredEvent> events;
  events.reserve(kTotal);
  for (int i = 0; i < kTotal; ++i) events.push_back(MakeEvent(a, i % 50, kT0 + i));
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  std::promise<void> all_done;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        const StoredEvent& e = events[static_cast<std::size_t>(i)];
        store_->Submit(
            WriteTask{[&](Txn& tx) -> Status {
                        if (auto r = tx.InsertEvent(e); !r) return r;
                        auto jobs = tx.InsertDeliveries(
                            {NewDelivery{a, e.record.event_id, s.id, R"({"targetId":1})", kT0}},
                            "me", kT0, kT0 + 60'000);
                        if (!jobs) return core::Fail(jobs.error());
                        return {};
                      },
                      [&](const Status& st) {
                        ok += st.has_value();
                        if (++finished == kTotal) all_done.set_value();
                      }});
      }
    });
  }
  for (auto& th : threads) th.join();
  all_done.get_future().wait();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ok.load(), kTotal);
  std::printf("[ info     ] %s: %d event+delivery writes in %.3f s (%.0f/s)\n",
              GetParam().name.c_str(), ok.load(), secs, ok.load() / secs);
  R([&](Txn& tx) {
    EXPECT_EQ(tx.ListEvents(a, EventFilter{}, Page{kTotal + 1, std::nullopt})->rows.size(),
              static_cast<std::size_t>(kTotal));
  });
}

// --- the portal (CONTRACT §13): one-time links and the sessions they become ---

TEST_P(StoreConformance, PortalLinksAreUsedOnceAndSessionsExpire) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client ca = NewClient(a);
  Client cb = NewClient(b);
  constexpr UnixMs kHour = 3600LL * 1000;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.CreatePortalLink(a, ca.id, "link-1", kT0, kT0 + kHour));
    ASSERT_TRUE(tx.CreatePortalLink(a, ca.id, "link-2", kT0, kT0 + kHour));
    ASSERT_TRUE(tx.CreatePortalLink(b, cb.id, "link-b", kT0, kT0 + kHour));
  });
  W([&](Txn& tx) {
    auto r = tx.RedeemPortalLink("link-1", "session-1", kT0 + 10, kT0 + 8 * kHour).value();
    EXPECT_EQ(r.outcome, PortalRedeem::kRedeemed);
    ASSERT_TRUE(r.session);
    EXPECT_EQ(r.session->tenant, a);
    EXPECT_EQ(r.session->client, ca.id);
    EXPECT_EQ(r.session->expires_at, kT0 + 8 * kHour);
    // Once only; an unknown link; a link past its hour.
    auto again = tx.RedeemPortalLink("link-1", "session-x", kT0 + 20, kT0 + 8 * kHour).value();
    EXPECT_EQ(again.outcome, PortalRedeem::kUsed);
    EXPECT_FALSE(again.session);
    EXPECT_EQ(tx.RedeemPortalLink("nope", "session-y", kT0, kT0 + kHour).value().outcome,
              PortalRedeem::kUnknown);
    EXPECT_EQ(
        tx.RedeemPortalLink("link-2", "session-z", kT0 + kHour, kT0 + 9 * kHour).value().outcome,
        PortalRedeem::kExpired);
  });
  R([&](Txn& tx) {
    auto s = tx.FindPortalSession("session-1", kT0 + kHour).value();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->tenant, a);
    EXPECT_EQ(s->client, ca.id);
    EXPECT_FALSE(tx.FindPortalSession("session-1", kT0 + 8 * kHour).value()) << "expired";
    for (const char* never : {"session-x", "session-y", "session-z", "link-1"}) {
      EXPECT_FALSE(tx.FindPortalSession(never, kT0 + 30).value()) << never;
    }
  });
  // Sign-out ends the session; a deleted client's link and session sign nobody in.
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.DeletePortalSession("session-1").value());
    EXPECT_FALSE(tx.DeletePortalSession("session-1").value());
    ASSERT_TRUE(tx.CreatePortalLink(b, cb.id, "link-b2", kT0 + 40, kT0 + kHour));
    auto rb = tx.RedeemPortalLink("link-b", "session-b", kT0 + 50, kT0 + 8 * kHour).value();
    EXPECT_EQ(rb.outcome, PortalRedeem::kRedeemed);
    ASSERT_TRUE(tx.DeleteClient(b, cb.id, kT0 + 60).value());
    EXPECT_EQ(
        tx.RedeemPortalLink("link-b2", "session-b2", kT0 + 70, kT0 + 8 * kHour).value().outcome,
        PortalRedeem::kUnknown);
  });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.FindPortalSession("session-1", kT0 + 30).value());
    EXPECT_FALSE(tx.FindPortalSession("session-b", kT0 + 80).value());
    EXPECT_FALSE(tx.FindPortalSession("session-b2", kT0 + 80).value());
  });
  // A new link sweeps the tenant's expired links and sessions: an expired link is then unknown.
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.CreatePortalLink(a, ca.id, "link-3", kT0 + 2 * kHour, kT0 + 3 * kHour));
    EXPECT_EQ(tx.RedeemPortalLink("link-2", "s", kT0 + 2 * kHour, kT0 + 9 * kHour).value().outcome,
              PortalRedeem::kUnknown);
  });
}

// =============================================================================================
// Retention, gauges and the delivery counters of GET /metrics (CONTRACT §13). Txn::PurgeEvents,
// Txn::PurgeIdempotencyKeys, Txn::ReadGauges, store/delivery_counters.h.

TEST_P(StoreConformance, RetentionPurgesOldFinishedEventsOnly) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  // Old events (accepted at kT0 + i), in acceptance order (event ids are ULIDs of that time).
  auto succeeded = Publish(MakeEvent(a, 1, kT0), {s1.id});
  auto dead = Publish(MakeEvent(a, 2, kT0 + 1), {s1.id});
  auto failed = Publish(MakeEvent(a, 3, kT0 + 2), {s1.id});
  auto cancelled = Publish(MakeEvent(a, 4, kT0 + 3), {s2.id});
  StoredEvent unleased = MakeEvent(a, 5, kT0 + 4);
  Publish(unleased, {s1.id}, /*owner=*/"");  // pending, nobody's yet
  auto redelivered = Publish(MakeEvent(a, 6, kT0 + 5), {s1.id});
  auto fresh = Publish(MakeEvent(a, 7, kT0 + 10'000), {s1.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(
                      kPublisher,
                      {MakeOutcome(succeeded[0], DeliveryStatus::kSucceeded, kT0 + 10),
                       MakeOutcome(dead[0], DeliveryStatus::kDead, kT0 + 10),
                       MakeOutcome(failed[0], DeliveryStatus::kFailed, kT0 + 10, kT0 + 3'600'000),
                       MakeOutcome(redelivered[0], DeliveryStatus::kDead, kT0 + 10),
                       MakeOutcome(fresh[0], DeliveryStatus::kSucceeded, kT0 + 10'010)})
                    .has_value());
    ASSERT_TRUE(tx.DisableSubscription(a, s2.id, "manual", kT0 + 20).value());
    // A dead delivery sent again is open again: its event stays.
    ASSERT_EQ(
        tx.Redeliver(a, redelivered[0].event_id, std::nullopt, std::nullopt, kT0 + 30)->reopened,
        1);
  });

  // Small pages: the cursor walks past the events it must keep.
  PurgeResult total;
  std::string after;
  int calls = 0;
  for (; calls < 20; ++calls) {
    PurgeResult r;
    W([&](Txn& tx) { r = tx.PurgeEvents(after, kT0 + 5'000, 2).value(); });
    total.events += r.events;
    total.deliveries += r.deliveries;
    total.attempts += r.attempts;
    total.kept += r.kept;
    if (!r.next) break;
    after = *r.next;
  }
  EXPECT_EQ(calls, 3) << "6 old events in pages of 2, then an empty page";
  EXPECT_EQ(total.events, 3) << "succeeded, dead and cancelled";
  EXPECT_EQ(total.deliveries, 3);
  EXPECT_EQ(total.attempts, 2) << "the cancelled delivery had no attempt";
  EXPECT_EQ(total.kept, 3) << "failed, pending, redelivered";

  R([&](Txn& tx) {
    for (const auto* gone : {&succeeded, &dead, &cancelled}) {
      EXPECT_FALSE(tx.GetEvent(a, (*gone)[0].event_id).value());
      EXPECT_TRUE(tx.GetDeliveries(a, (*gone)[0].event_id, std::nullopt).value().empty());
    }
    for (const std::string& kept : {failed[0].event_id, unleased.record.event_id,
                                    redelivered[0].event_id, fresh[0].event_id}) {
      EXPECT_TRUE(tx.GetEvent(a, kept).value()) << kept;
      EXPECT_EQ(tx.GetDeliveries(a, kept, std::nullopt).value().size(), 1u) << kept;
    }
    // The attempts of the kept events are kept, those of the deleted ones are gone.
    auto log = tx.ListAttempts(a, s1.id, AttemptFilter{}, Page{100, std::nullopt}).value();
    std::set<std::string> events;
    for (const auto& row : log.rows) events.insert(row.event_id);
    EXPECT_EQ(events, (std::set<std::string>{failed[0].event_id, redelivered[0].event_id,
                                             fresh[0].event_id}));
  });

  // Idempotent: a second pass finds nothing more to delete.
  W([&](Txn& tx) {
    auto again = tx.PurgeEvents("", kT0 + 5'000, 100).value();
    EXPECT_EQ(again.events, 0);
    EXPECT_EQ(again.kept, 3);
    EXPECT_FALSE(again.next);
    // A later cut-off reaches the fresh event too.
    auto later = tx.PurgeEvents("", kT0 + 20'000, 100).value();
    EXPECT_EQ(later.events, 1);
    EXPECT_EQ(later.kept, 3);
  });
}

TEST_P(StoreConformance, RetentionPurgesIdempotencyKeysByAge) {
  TenantId a = NewTenant("a");
  W([&](Txn& tx) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_FALSE(tx.PutIdempotencyIfAbsent(a, "old-" + std::to_string(i),
                                             IdempotencyRecord{"h", 202, "{}", kT0 + i})
                       .value());
    }
    ASSERT_FALSE(
        tx.PutIdempotencyIfAbsent(a, "new", IdempotencyRecord{"h", 202, "{}", kT0 + 100}).value());
  });
  W([&](Txn& tx) {
    EXPECT_EQ(tx.PurgeIdempotencyKeys(kT0 + 100, 3).value(), 3) << "a batch at most";
    EXPECT_EQ(tx.PurgeIdempotencyKeys(kT0 + 100, 3).value(), 2);
    EXPECT_EQ(tx.PurgeIdempotencyKeys(kT0 + 100, 3).value(), 0);
  });
  R([&](Txn& tx) {
    EXPECT_FALSE(tx.GetIdempotency(a, "old-0").value());
    EXPECT_TRUE(tx.GetIdempotency(a, "new").value());
  });
}

TEST_P(StoreConformance, GaugesCountDueUnleasedDeliveriesAndDisabledSubscriptions) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client ca = NewClient(a);
  Client cb = NewClient(b);
  Subscription s1 = NewSubscription(a, ca.id);
  Subscription s2 = NewSubscription(b, cb.id);
  Subscription off = NewSubscription(a, ca.id);
  Subscription deleted = NewSubscription(a, ca.id);
  R([&](Txn& tx) {
    auto g = tx.ReadGauges(kT0).value();
    EXPECT_EQ(g.deliveries_due, 0);
    EXPECT_FALSE(g.oldest_due_at);
    EXPECT_EQ(g.subscriptions_disabled, 0);
  });
  Publish(MakeEvent(a, 1, kT0), {s1.id}, "");                  // due from kT0, unleased
  Publish(MakeEvent(b, 2, kT0 + 100), {s2.id}, "");            // another tenant's: counted too
  auto leased = Publish(MakeEvent(a, 3, kT0 + 200), {s1.id});  // taken: not waiting
  Publish(MakeEvent(a, 4, kT0 + 5'000), {s1.id}, "");          // not due before kT0 + 5000
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.DisableSubscription(a, off.id, "manual", kT0).value());
    ASSERT_TRUE(tx.DisableSubscription(a, deleted.id, "manual", kT0).value());
    ASSERT_TRUE(tx.DeleteSubscription(a, deleted.id).value());
  });
  R([&](Txn& tx) {
    auto g = tx.ReadGauges(kT0 + 1'000).value();
    EXPECT_EQ(g.deliveries_due, 2);
    EXPECT_EQ(g.oldest_due_at, kT0);
    EXPECT_EQ(g.subscriptions_disabled, 1) << "disabled, not deleted";
    auto later = tx.ReadGauges(kT0 + 6'000).value();
    EXPECT_EQ(later.deliveries_due, 3);
    auto before = tx.ReadGauges(kT0 - 1).value();
    EXPECT_EQ(before.deliveries_due, 0);
    EXPECT_FALSE(before.oldest_due_at);
  });
  // A failed attempt due again later is due from its next attempt time.
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(leased[0], DeliveryStatus::kFailed,
                                                           kT0 + 300, kT0 + 400)})
                    .has_value());
  });
  R([&](Txn& tx) { EXPECT_EQ(tx.ReadGauges(kT0 + 1'000).value().deliveries_due, 3); });
}

// The counters are the process's, shared by every store: differences are asserted.
TEST_P(StoreConformance, DeliveryCountersCountCommittedWorkOnly) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  const DeliveryCounterValues before = DeliveryCounters::Read();
  auto e1 = Publish(MakeEvent(a, 1, kT0), {s1.id, s2.id});
  auto e2 = Publish(MakeEvent(a, 2, kT0 + 1), {s1.id, s2.id});
  // A task that fails after its writes changed nothing, so it counts nothing.
  Status rolled_back = store_->Write([&](Txn& tx) -> Status {
    EXPECT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(e1[0], DeliveryStatus::kSucceeded, kT0 + 10)})
            .has_value());
    return core::Fail(core::Error::Internal("changed my mind"));
  });
  ASSERT_FALSE(rolled_back);
  W([&](Txn& tx) {
    auto slow = MakeOutcome(e1[1], DeliveryStatus::kDead, kT0 + 10);
    slow.attempt.duration_ms = 700;
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher,
                          {MakeOutcome(e1[0], DeliveryStatus::kSucceeded, kT0 + 10), slow,
                           MakeOutcome(e2[0], DeliveryStatus::kFailed, kT0 + 10, kT0 + 1000)})
            .has_value());
  });
  // An outcome of a row no longer leased to the caller is not counted either.
  W([&](Txn& tx) {
    EXPECT_EQ(tx.RecordOutcomes("someone-else",
                                {MakeOutcome(e2[1], DeliveryStatus::kSucceeded, kT0 + 11)})
                  .value()
                  .size(),
              1u);
  });
  // Disabling s2 cancels e2's open delivery to it (e1's is dead already).
  W([&](Txn& tx) { ASSERT_TRUE(tx.DisableSubscription(a, s2.id, "manual", kT0 + 20).value()); });
  const DeliveryCounterValues after = DeliveryCounters::Read();
  EXPECT_EQ(after.events_accepted - before.events_accepted, 2u);
  EXPECT_EQ(after.succeeded - before.succeeded, 1u);
  EXPECT_EQ(after.failed - before.failed, 2u) << "the dead one's attempt failed too";
  EXPECT_EQ(after.dead - before.dead, 1u);
  EXPECT_EQ(after.cancelled - before.cancelled, 1u);
  std::uint64_t attempts = 0;
  for (std::size_t i = 0; i < after.duration_buckets.size(); ++i) {
    attempts += after.duration_buckets[i] - before.duration_buckets[i];
  }
  EXPECT_EQ(attempts, 3u);
  EXPECT_EQ(after.duration_sum_ms - before.duration_sum_ms, 12u + 700u + 12u);
  // 700 ms is in the bucket of le=1 (index 7), the others in le=0.025 (index 2).
  EXPECT_EQ(after.duration_buckets[7] - before.duration_buckets[7], 1u);
  EXPECT_EQ(after.duration_buckets[2] - before.duration_buckets[2], 2u);
}

// =============================================================================================
// Surfaces (CONTRACT §13): directory lists and references, batch inserts of events, the
// subscription backlog, paused subscriptions.
// =============================================================================================

TEST_P(StoreConformance, SurfacesDirectoryListsPageInIdOrder) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  W([&](Txn& tx) {
    for (std::int64_t id : {30, 10, 50, 20, 40}) {
      Customer c;
      c.tenant = a;
      c.id = id;
      c.customer_number = "C-" + std::to_string(id);
      c.name = "Customer " + std::to_string(id);
      c.internal_notes = "notes";
      c.external_ids = {{"erp", "K-" + std::to_string(id)}};
      ASSERT_TRUE(tx.UpsertCustomer(c).has_value());
    }
    Customer other;
    other.tenant = b;
    other.id = 15;
    other.customer_number = "B";
    other.name = "B";
    ASSERT_TRUE(tx.UpsertCustomer(other).has_value());
    for (std::int64_t id : {7, 3}) {
      Location l;
      l.tenant = a;
      l.id = id;
      l.customer_id = 10;
      l.name = "L" + std::to_string(id);
      l.external_ids = {{"erp", "L-" + std::to_string(id)}};
      ASSERT_TRUE(tx.UpsertLocation(l).has_value());
      Contact c;
      c.tenant = a;
      c.id = id;
      c.customer_id = 10;
      c.display_name = "P" + std::to_string(id);
      c.email = "p@example.com";
      ASSERT_TRUE(tx.UpsertContact(c).has_value());
    }
  });
  R([&](Txn& tx) {
    auto p1 = tx.ListCustomers(a, Page{2, std::nullopt}).value();
    ASSERT_EQ(p1.rows.size(), 2u);
    EXPECT_EQ(p1.rows[0].id, 10);
    EXPECT_EQ(p1.rows[1].id, 20);
    EXPECT_EQ(p1.rows[0].external_ids, (ExternalIds{{"erp", "K-10"}}));
    EXPECT_EQ(p1.rows[0].customer_number, "C-10");
    ASSERT_TRUE(p1.next);
    auto p2 = tx.ListCustomers(a, Page{2, p1.next}).value();
    ASSERT_EQ(p2.rows.size(), 2u);
    EXPECT_EQ(p2.rows[0].id, 30);
    auto p3 = tx.ListCustomers(a, Page{2, p2.next}).value();
    ASSERT_EQ(p3.rows.size(), 1u);
    EXPECT_EQ(p3.rows[0].id, 50);
    EXPECT_FALSE(p3.next);
    auto onlyB = tx.ListCustomers(b, Page{}).value();
    ASSERT_EQ(onlyB.rows.size(), 1u);
    EXPECT_EQ(onlyB.rows[0].id, 15);
    auto bad = tx.ListCustomers(a, Page{2, "x"});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().kind, ErrorKind::kInvalid);

    auto locations = tx.ListLocations(a, Page{}).value();
    ASSERT_EQ(locations.rows.size(), 2u);
    EXPECT_EQ(locations.rows[0].id, 3);
    EXPECT_EQ(locations.rows[0].customer_id, 10);
    EXPECT_EQ(locations.rows[1].external_ids, (ExternalIds{{"erp", "L-7"}}));
    EXPECT_TRUE(tx.ListLocations(b, Page{}).value().rows.empty());
    auto contacts = tx.ListContacts(a, Page{1, std::nullopt}).value();
    ASSERT_EQ(contacts.rows.size(), 1u);
    EXPECT_EQ(contacts.rows[0].id, 3);
    EXPECT_EQ(contacts.rows[0].email, "p@example.com");
    ASSERT_TRUE(contacts.next);
    EXPECT_EQ(tx.ListContacts(a, Page{1, contacts.next}).value().rows.at(0).id, 7);
  });
}

TEST_P(StoreConformance, SurfacesDeletingAReferencedDirectoryRecordIsInUse) {
  TenantId a = NewTenant("a");
  Client erp = NewClient(a, "erp");
  NewCustomerLocationContact(a);
  std::vector<TargetId> targets;
  W([&](Txn& tx) {
    for (int i = 0; i < 2; ++i) {
      Target t;
      t.tenant = a;
      t.import_client = erp.id;
      t.source_system = "erp";
      t.external_id = "DEL-" + std::to_string(i);
      t.customer_id = 1;
      t.location_id = 2;
      if (i == 0) t.contact_id = 3;
      t.title = "Fix";
      t.status = i == 0 ? "Imported" : "Cancelled";  // a target of any status counts
      t.created_at = kT0;
      t.updated_at = kT0;
      targets.push_back(tx.InsertTarget(t).value().id);
    }
  });
  R([&](Txn& tx) {
    auto c = tx.CountReferences(a, EntityKind::kCustomer, 1).value();
    EXPECT_EQ(c.targets, 2);
    EXPECT_EQ(c.locations, 1);
    EXPECT_EQ(c.contacts, 1);
    EXPECT_EQ(tx.CountReferences(a, EntityKind::kLocation, 2).value().targets, 2);
    EXPECT_EQ(tx.CountReferences(a, EntityKind::kContact, 3).value().targets, 1);
    EXPECT_EQ(tx.CountReferences(a, EntityKind::kContact, 99).value().targets, 0);
  });
  auto refused = [&](EntityKind kind, std::int64_t id) {
    auto st = store_->Write([&](Txn& tx) -> Status {
      auto r = tx.DeleteEntity(a, kind, id);
      if (!r) return core::Fail(r.error());
      return {};
    });
    EXPECT_FALSE(st);
    if (st) return std::string();
    EXPECT_EQ(st.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(st.error().code, "in_use");
    return st.error().message;
  };
  EXPECT_EQ(refused(EntityKind::kCustomer, 1),
            "customer 1 is referenced by 2 targets, 1 location and 1 contact");
  EXPECT_EQ(refused(EntityKind::kLocation, 2), "location 2 is referenced by 2 targets");
  EXPECT_EQ(refused(EntityKind::kContact, 3), "contact 3 is referenced by 1 target");
  // Nothing changed: the records and their external ids are all there.
  R([&](Txn& tx) {
    EXPECT_TRUE(tx.GetCustomer(a, 1).value());
    EXPECT_TRUE(tx.GetLocation(a, 2).value());
    EXPECT_TRUE(tx.GetContact(a, 3).value());
    EXPECT_EQ(tx.FindByExternalId(a, EntityKind::kCustomer, "erp", "K-1").value(), 1);
  });
  // Once nothing refers to them any more, they go (innermost first).
  W([&](Txn& tx) {
    for (TargetId t : targets)
      EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kTarget, t.value).value());
    EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kContact, 3).value());
    EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kLocation, 2).value());
    EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kCustomer, 1).value());
  });
}

TEST_P(StoreConformance, SurfacesInsertEventsInOneGoAndSetTargetStatus) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  // 250 events: more than one multi-row statement (100 rows each).
  std::vector<StoredEvent> events;
  events.reserve(250);
  for (int i = 0; i < 250; ++i) {
    events.push_back(
        MakeEvent(a, 1000 + i % 7, kT0 + i,
                  i % 2 == 0 ? EventType::kAppointmentCompleted : EventType::kAppointmentStarted));
  }
  events[3].origin_client = c.id;
  std::vector<DeliveryJob> jobs;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvents(events).has_value());
    std::vector<NewDelivery> rows;
    rows.reserve(events.size());
    for (const auto& e : events) {
      rows.push_back(NewDelivery{a, e.record.event_id, s.id, R"({"n":1})", kT0});
    }
    jobs = tx.InsertDeliveries(rows, kPublisher, kT0, kT0 + 60'000).value();
  });
  ASSERT_EQ(jobs.size(), events.size());
  std::map<std::string, DeliveryJob> by_event;
  for (const auto& j : jobs) by_event[j.event_id] = j;
  for (const auto& e : events) {
    const DeliveryJob& j = by_event.at(e.record.event_id);
    EXPECT_EQ(j.event_type, core::Info(e.record.type).name);
    EXPECT_EQ(j.occurred_at, e.record.occurred_at);
    EXPECT_EQ(j.target_id, e.record.target_id);
  }
  R([&](Txn& tx) {
    auto all = tx.ListEvents(a, EventFilter{}, Page{1000, std::nullopt}).value();
    EXPECT_EQ(all.rows.size(), events.size());
    auto e3 = tx.GetEvent(a, events[3].record.event_id).value();
    ASSERT_TRUE(e3);
    EXPECT_EQ(e3->origin_client, c.id);
    EXPECT_EQ(e3->record.data, events[3].record.data);
    EXPECT_EQ(e3->record.accepted_at, events[3].record.accepted_at);
    auto e4 = tx.GetEvent(a, events[4].record.event_id).value();
    ASSERT_TRUE(e4);
    EXPECT_FALSE(e4->origin_client);
    EXPECT_EQ(e4->record.type, EventType::kAppointmentCompleted);
  });
  // All or nothing: a batch with a duplicate event id stores none of its events.
  std::vector<StoredEvent> clash = {MakeEvent(a, 1, kT0 + 500), events[0]};
  auto st = store_->Write([&](Txn& tx) { return tx.InsertEvents(clash); });
  EXPECT_FALSE(st);
  R([&](Txn& tx) { EXPECT_FALSE(tx.GetEvent(a, clash[0].record.event_id).value()); });

  // SetTargetStatus changes the status and updated_at, nothing else.
  Target t;
  t.tenant = a;
  t.import_client = c.id;
  t.source_system = "logistics_erp";
  t.external_id = "T-1";
  t.customer_id = 1;
  t.title = "Fix";
  t.status = "Imported";
  t.external_ids = {{"crm", "CRM-1"}};
  t.created_at = kT0;
  t.updated_at = kT0;
  NewCustomerLocationContact(a);
  W([&](Txn& tx) { t = tx.InsertTarget(t).value(); });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.SetTargetStatus(a, t.id, "Completed", kT0 + 9).value());
    EXPECT_FALSE(tx.SetTargetStatus(b, t.id, "Completed", kT0 + 9).value()) << "another tenant's";
    EXPECT_FALSE(tx.SetTargetStatus(a, TargetId(t.id.value + 100), "Completed", kT0).value());
  });
  R([&](Txn& tx) {
    auto got = tx.GetTarget(a, t.id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, "Completed");
    EXPECT_EQ(got->updated_at, kT0 + 9);
    EXPECT_EQ(got->title, "Fix");
    EXPECT_EQ(got->external_ids, (ExternalIds{{"crm", "CRM-1"}, {"logistics_erp", "T-1"}}));
  });

  // MarkTarget (a publish) sets them as SetTargetStatus and answers the target as it now is,
  // as GetTarget would; another tenant's or an unknown target: nullopt, nothing changed.
  W([&](Txn& tx) {
    auto marked = tx.MarkTarget(a, t.id, "Started", kT0 + 10).value();
    ASSERT_TRUE(marked);
    auto got = tx.GetTarget(a, t.id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, "Started");
    EXPECT_EQ(got->updated_at, kT0 + 10);
    EXPECT_EQ(marked->id, t.id);
    EXPECT_EQ(marked->tenant, a);
    EXPECT_EQ(marked->import_client, c.id);
    EXPECT_EQ(marked->source_system, got->source_system);
    EXPECT_EQ(marked->external_id, got->external_id);
    EXPECT_EQ(marked->customer_id, got->customer_id);
    EXPECT_EQ(marked->title, "Fix");
    EXPECT_EQ(marked->status, "Started");
    EXPECT_EQ(marked->created_at, kT0);
    EXPECT_EQ(marked->updated_at, kT0 + 10);
    EXPECT_EQ(marked->external_ids, got->external_ids);
    EXPECT_FALSE(tx.MarkTarget(b, t.id, "Completed", kT0 + 11).value()) << "another tenant's";
    EXPECT_FALSE(tx.MarkTarget(a, TargetId(t.id.value + 100), "Completed", kT0 + 11).value());
  });
  R([&](Txn& tx) { EXPECT_EQ(tx.GetTarget(a, t.id).value()->status, "Started"); });

  // The snapshot of a marked target (PostgreSQL reads it with the target) is the snapshot of
  // the target read afresh: its customer, location and contact, each with its external ids,
  // with a JSON-minded text in them.
  Target full = t;
  full.id = {};
  full.external_id = "T-2";
  full.external_ids = {{"crm", "CRM-2 \"quoted\", {braced}"}};
  full.location_id = 2;
  full.contact_id = 3;
  W([&](Txn& tx) {
    SampleRecords d = SampleDirectory(a);
    d.location.external_ids = {{"erp", "L-2"}, {"gis", "G,2"}};
    d.contact.external_ids = {{"crm", "P-3"}};
    d.contact.email = "ana@example.test";
    ASSERT_TRUE(tx.UpsertLocation(d.location).has_value());
    ASSERT_TRUE(tx.UpsertContact(d.contact).has_value());
    full = tx.InsertTarget(full).value();
  });
  auto same = [](const core::TargetSnapshot& x, const core::TargetSnapshot& y) {
    EXPECT_EQ(x.target_id, y.target_id);
    EXPECT_EQ(x.external_ids, y.external_ids);
    ASSERT_EQ(x.customer.has_value(), y.customer.has_value());
    ASSERT_EQ(x.location.has_value(), y.location.has_value());
    ASSERT_EQ(x.contact.has_value(), y.contact.has_value());
    if (x.customer) {
      EXPECT_EQ(x.customer->id, y.customer->id);
      EXPECT_EQ(x.customer->customer_number, y.customer->customer_number);
      EXPECT_EQ(x.customer->name, y.customer->name);
      EXPECT_EQ(x.customer->external_ids, y.customer->external_ids);
    }
    if (x.location) {
      EXPECT_EQ(x.location->id, y.location->id);
      EXPECT_EQ(x.location->name, y.location->name);
      EXPECT_EQ(x.location->external_ids, y.location->external_ids);
    }
    if (x.contact) {
      EXPECT_EQ(x.contact->id, y.contact->id);
      EXPECT_EQ(x.contact->display_name, y.contact->display_name);
      EXPECT_EQ(x.contact->phone, y.contact->phone);
      EXPECT_EQ(x.contact->email, y.contact->email);
      EXPECT_EQ(x.contact->external_ids, y.contact->external_ids);
    }
  };
  for (const Target* target : {&t, &full}) {
    core::TargetSnapshot marked;
    W([&](Txn& tx) {
      auto m = tx.MarkTarget(a, target->id, "Completed", kT0 + 12).value();
      ASSERT_TRUE(m);
      marked = tx.LoadSnapshot(a, *m).value();
    });
    core::TargetSnapshot fresh;
    R([&](Txn& tx) { fresh = tx.LoadSnapshot(a, *tx.GetTarget(a, target->id).value()).value(); });
    ASSERT_TRUE(fresh.customer);
    EXPECT_EQ(fresh.location.has_value(), target == &full);
    EXPECT_EQ(fresh.contact.has_value(), target == &full);
    same(marked, fresh);
  }

  // MarkTargets (a batch of events) does what MarkTarget and LoadSnapshot do, for each target
  // of the list, in its order: an unknown target, or another tenant's, nullopt and unchanged.
  NewCustomerLocationContact(b);
  Target other = t;
  other.id = {};
  other.tenant = b;
  other.import_client = NewClient(b).id;
  other.external_ids = {};
  W([&](Txn& tx) { other = tx.InsertTarget(other).value(); });
  std::vector<TargetId> ids = {t.id, full.id, other.id, TargetId(other.id.value + 100)};
  std::sort(ids.begin(), ids.end(), [](TargetId x, TargetId y) { return x.value < y.value; });
  std::vector<TargetMark> marks;
  marks.reserve(ids.size());
  for (TargetId id : ids) marks.push_back({id, id == full.id ? "Scheduled" : "Cancelled"});
  std::vector<std::optional<MarkedTarget>> batch;
  W([&](Txn& tx) { batch = tx.MarkTargets(a, marks, kT0 + 13).value(); });
  ASSERT_EQ(batch.size(), marks.size());
  for (std::size_t i = 0; i < marks.size(); ++i) {
    SCOPED_TRACE("target " + std::to_string(marks[i].id.value));
    const bool mine = marks[i].id == t.id || marks[i].id == full.id;
    ASSERT_EQ(batch[i].has_value(), mine);
    if (!mine) continue;
    const Target& m = batch[i]->target;
    EXPECT_EQ(m.id, marks[i].id);
    EXPECT_EQ(m.status, marks[i].status);
    EXPECT_EQ(m.updated_at, kT0 + 13);
    core::TargetSnapshot fresh;
    R([&](Txn& tx) {
      auto got = tx.GetTarget(a, m.id).value();
      ASSERT_TRUE(got);
      EXPECT_EQ(got->status, marks[i].status);
      EXPECT_EQ(got->updated_at, kT0 + 13);
      EXPECT_EQ(m.external_ids, got->external_ids);
      EXPECT_EQ(m.title, got->title);
      EXPECT_EQ(m.location_id, got->location_id);
      EXPECT_EQ(m.contact_id, got->contact_id);
      fresh = tx.LoadSnapshot(a, *got).value();
    });
    EXPECT_EQ(batch[i]->snapshot.location.has_value(), m.id == full.id);
    same(batch[i]->snapshot, fresh);
  }
  R([&](Txn& tx) {
    auto got = tx.GetTarget(b, other.id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->status, "Imported") << "another tenant's target is not marked";
    EXPECT_EQ(got->updated_at, kT0);
  });
  W([&](Txn& tx) { EXPECT_TRUE(tx.MarkTargets(a, {}, kT0 + 14).value().empty()); });
}

// MarkTarget (a publish) answers the target as it is now, whatever changed it since it was last
// marked: an update of its fields and external ids, one in the same transaction, one rolled
// back, its deletion. (SQLite's writer keeps the targets it marked: DirectoryCache::targets.
// Each change here goes through ReplaceExternalIds, which drops them; SQLite's update hook on
// `targets` is a backstop for any other writer of the row, and SqliteStore.
// ATargetChangedByAnUndoneTaskIsNotKept the case of a task undone to its savepoint.)
TEST_P(StoreConformance, MarkTargetSeesEveryChangeOfItsTarget) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  NewCustomerLocationContact(a);
  Target t = TargetRow(a, c.id, "logistics_erp", "T-1");
  t.external_ids = {{"crm", "CRM-1"}};
  W([&](Txn& tx) { t = tx.InsertTarget(t).value(); });
  auto mark = [&](std::string_view status, UnixMs at) {
    std::optional<Target> m;
    W([&](Txn& tx) { m = tx.MarkTarget(a, t.id, status, at).value(); });
    return m;
  };
  std::optional<Target> m = mark("Scheduled", kT0 + 1);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->title, "Fix");
  m = mark("Scheduled", kT0 + 2);  // marked again: what was read the first time
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, "Scheduled");
  EXPECT_EQ(m->updated_at, kT0 + 2);
  EXPECT_EQ(m->external_ids, (ExternalIds{{"crm", "CRM-1"}, {"logistics_erp", "T-1"}}));

  // Updated: its fields and its external ids.
  Target changed = t;
  changed.title = "Fix the gate";
  changed.location_id = 2;
  changed.external_ids = {{"crm", "CRM-9"}};
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateTarget(changed).has_value()); });
  m = mark("Started", kT0 + 3);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->title, "Fix the gate");
  EXPECT_EQ(m->location_id, std::optional<std::int64_t>(2));
  EXPECT_EQ(m->external_ids, (ExternalIds{{"crm", "CRM-9"}, {"logistics_erp", "T-1"}}));
  EXPECT_EQ(m->status, "Started");

  // Changed and marked in one transaction: the change; rolled back: the target as it was.
  Target doomed = changed;
  doomed.title = "Never";
  doomed.external_ids = {{"crm", "CRM-0"}};
  auto st = store_->Write([&](Txn& tx) -> Status {
    EXPECT_TRUE(tx.UpdateTarget(doomed).has_value());
    auto in = tx.MarkTarget(a, t.id, "Completed", kT0 + 4);
    EXPECT_TRUE(in && *in && (*in)->title == "Never");
    return core::Fail(core::Error::Internal("rolled back on purpose"));
  });
  EXPECT_FALSE(st.has_value());
  m = mark("Completed", kT0 + 5);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->title, "Fix the gate");
  EXPECT_EQ(m->external_ids, (ExternalIds{{"crm", "CRM-9"}, {"logistics_erp", "T-1"}}));
  R([&](Txn& tx) { EXPECT_EQ(tx.GetTarget(a, t.id).value()->status, "Completed"); });

  // Deleted: no longer marked.
  W([&](Txn& tx) { EXPECT_TRUE(tx.DeleteEntity(a, EntityKind::kTarget, t.id.value).value()); });
  EXPECT_FALSE(mark("Cancelled", kT0 + 6));
}

TEST_P(StoreConformance, SurfacesBacklogCountsTheDeliveriesStillWaiting) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  Subscription quiet = NewSubscription(a, c.id);
  auto j1 = Publish(MakeEvent(a, 1, kT0), {s.id});
  auto j2 = Publish(MakeEvent(a, 2, kT0 + 10), {s.id});
  auto j3 = Publish(MakeEvent(a, 3, kT0 + 20), {s.id});
  auto j4 = Publish(MakeEvent(a, 4, kT0 + 30), {s.id});
  W([&](Txn& tx) {
    // One succeeded (no longer waiting), one failed and due again later, one dead.
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher,
                          {MakeOutcome(j1[0], DeliveryStatus::kSucceeded, kT0 + 100),
                           MakeOutcome(j2[0], DeliveryStatus::kFailed, kT0 + 100, kT0 + 5'000),
                           MakeOutcome(j4[0], DeliveryStatus::kDead, kT0 + 100)})
            .has_value());
  });
  R([&](Txn& tx) {
    auto backlogs = tx.GetBacklogs(a, {s.id, quiet.id, SubscriptionId(999)}).value();
    ASSERT_EQ(backlogs.size(), 3u);
    EXPECT_EQ(backlogs[0].pending, 2);  // j2 failed (due kT0 + 5000), j3 pending (due kT0 + 20)
    EXPECT_EQ(backlogs[0].oldest_due_at, kT0 + 20);
    EXPECT_EQ(backlogs[1].pending, 0);
    EXPECT_FALSE(backlogs[1].oldest_due_at);
    EXPECT_EQ(backlogs[2].pending, 0);
    // Another tenant learns nothing about it.
    auto other = tx.GetBacklogs(b, {s.id}).value();
    EXPECT_EQ(other.at(0).pending, 0);
    EXPECT_FALSE(other.at(0).oldest_due_at);
  });
}

TEST_P(StoreConformance, SurfacesPausedSubscriptionHoldsItsDeliveriesUntilUnpaused) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);  // ordered
  // Failing before the pause, the retry far ahead.
  auto failed = Publish(MakeEvent(a, 8, kT0 - 10), {s.id});
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(failed[0], DeliveryStatus::kFailed,
                                                           kT0 - 5, kT0 + 1'000'000'000)})
                    .has_value());
  });
  R([&](Txn& tx) { EXPECT_TRUE(tx.GetFailureStreak(a, s.id).value().failing_since); });
  std::int64_t v0 = 0;
  R([&](Txn& tx) { v0 = tx.ChangedTenants(0).value().version; });
  s.paused = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  R([&](Txn& tx) {
    auto got = tx.GetSubscription(a, s.id).value();
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->paused);
    EXPECT_TRUE(got->enabled);
    // A pause is a configuration change: other processes' caches hear of it.
    auto changes = tx.ChangedTenants(v0).value();
    ASSERT_EQ(changes.tenants.size(), 1u);
    EXPECT_EQ(changes.tenants[0], a);
    // The fan-out list still has it (its events are kept for it), marked paused.
    auto fanout = tx.ListFanoutTargets(a).value();
    ASSERT_EQ(fanout.size(), 1u);
    EXPECT_TRUE(fanout[0].first.paused);
  });
  // Fan-out rows of a paused subscription are inserted held: not leased, not returned as jobs.
  std::vector<StoredEvent> events = {MakeEvent(a, 7, kT0), MakeEvent(a, 7, kT0 + 1)};
  W([&](Txn& tx) {
    for (const auto& e : events) {
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      NewDelivery row{a, e.record.event_id, s.id, R"({"n":1})", e.record.accepted_at, true};
      EXPECT_TRUE(tx.InsertDeliveries({row}, kPublisher, kT0, kT0 + 60'000).value().empty());
    }
  });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 + 10'000, kT0 + 70'000, 10).value().empty());
    EXPECT_FALSE(tx.NextDueAt().value()) << "nothing to wake the dispatcher for";
  });
  R([&](Txn& tx) {
    // Held, not cancelled (unlike enabled = false).
    auto d = tx.GetDeliveries(a, events[0].record.event_id, std::nullopt).value();
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].status, DeliveryStatus::kPending);
    EXPECT_EQ(tx.GetBacklogs(a, {s.id}).value().at(0).pending, 3);
    EXPECT_TRUE(tx.GetFailureStreak(a, s.id).value().failing_since);
  });
  s.paused = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  // The time paused made no attempts: the failing period starts afresh.
  R([&](Txn& tx) { EXPECT_FALSE(tx.GetFailureStreak(a, s.id).value().failing_since); });
  W([&](Txn& tx) {
    EXPECT_EQ(tx.NextDueAt().value(), kT0);
    // Ordered: the target's head first, the next once it is done.
    auto jobs = tx.ClaimDue(kPublisher, kT0 + 10'000, kT0 + 70'000, 10).value();
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].event_id, events[0].record.event_id);
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, kT0 + 10'001)})
                    .has_value());
    auto next = tx.ClaimDue(kPublisher, kT0 + 10'002, kT0 + 70'000, 10).value();
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].event_id, events[1].record.event_id);
  });
}

// A paused subscription's rows wait, however they became due, and every one is claimed once it
// is unpaused (CONTRACT §13): rows given back before the pause and during it, inserted held by
// fan-out, and inserted by a process that had not heard of the pause; a pause again before any
// claim; a paused subscription deleted. Another subscription's rows are claimed meanwhile, and
// the held rows count as due. SQLite holds such rows (migration 15: out of deliveries_due, held
// by the claims that meet them, let go by the claims after the unpause); seen failing with the
// claim's release left out (nothing claimed after the unpause).
TEST_P(StoreConformance, PausedRowsWaitAndAreAllClaimedOnceUnpaused) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s = NewUnorderedSubscription(a, c.id);
  Subscription other = NewUnorderedSubscription(a, c.id);
  Subscription gone = NewUnorderedSubscription(a, c.id);
  const bool sqlite = GetParam().name == "Sqlite";
  const UnixMs now = kT0 + 10'000;
  std::vector<std::string> events;   // of s, in due order
  std::vector<DeliveryRowId> later;  // s's rows given back during the pause
  std::vector<DeliveryRowId> back;   // given back before it
  for (int i = 0; i < 3; ++i) {
    StoredEvent e = MakeEvent(a, std::nullopt, kT0 + i);
    events.push_back(e.record.event_id);
    for (const DeliveryJob& j : Publish(e, {s.id, gone.id})) {
      (j.subscription == s.id && i > 0 ? later : back).push_back(j.id);
    }
  }
  W([&](Txn& tx) { ASSERT_EQ(tx.ReleaseLeases(kPublisher, back).value(), 0); });
  for (Subscription* sub : {&s, &gone}) {
    sub->paused = true;
    W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(*sub).has_value()); });
  }
  auto claim = [&](int limit) {
    std::vector<DeliveryJob> jobs;
    W([&](Txn& tx) { jobs = tx.ClaimDue(kPublisher, now, now + 60'000, limit).value(); });
    return jobs;
  };
  EXPECT_TRUE(claim(10).empty());
  W([&](Txn& tx) { ASSERT_EQ(tx.ReleaseLeases(kPublisher, later).value(), 0); });
  for (bool held : {true, false}) {
    StoredEvent e = MakeEvent(a, std::nullopt, kT0 + static_cast<int>(events.size()));
    events.push_back(e.record.event_id);
    W([&](Txn& tx) {
      ASSERT_TRUE(tx.InsertEvent(e).has_value());
      NewDelivery row{a, e.record.event_id, s.id, "{}", e.record.accepted_at, held};
      EXPECT_TRUE(tx.InsertDeliveries({row}, "", kT0, 0).value().empty());
    });
  }
  StoredEvent fresh = MakeEvent(a, std::nullopt, kT0 + 100);
  std::vector<DeliveryJob> fresh_jobs = Publish(fresh, {other.id});
  W([&](Txn& tx) { ASSERT_EQ(tx.ReleaseLeases(kPublisher, {fresh_jobs.at(0).id}).value(), 0); });
  {
    std::vector<DeliveryJob> jobs = claim(10);
    ASSERT_EQ(jobs.size(), 1u) << "another subscription's row is claimed meanwhile";
    EXPECT_EQ(jobs[0].subscription, other.id);
  }
  if (sqlite) {
    EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE held = 1"), 8);
  }
  R([&](Txn& tx) {
    EXPECT_EQ(tx.ReadGauges(now).value().deliveries_due, 8) << "held rows are waiting: due";
    EXPECT_EQ(tx.GetBacklogs(a, {s.id}).value().at(0).pending, 5);
  });
  // A paused subscription that is also disabled, with a row recovered: not sent, and (SQLite)
  // held as reopened while disabled (3, migration 16), which only its enabling lets go of: not
  // held for the pause (1), which claims would hold and let go of in turn (that kept the claims
  // from letting go of other subscriptions' rows).
  Subscription off = NewUnorderedSubscription(a, c.id);
  {
    std::vector<DeliveryJob> jobs = Publish(MakeEvent(a, std::nullopt, kT0 + 50), {off.id});
    W([&](Txn& tx) {
      EXPECT_TRUE(
          tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs.at(0), DeliveryStatus::kDead, kT0 + 51)})
              ->empty());
    });
    off.paused = true;
    off.enabled = false;
    W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(off).has_value()); });
    W([&](Txn& tx) { EXPECT_EQ(tx.RecoverDeliveries(a, off.id, 0, kT0 + 52).value(), 1); });
  }
  EXPECT_TRUE(claim(10).empty());
  EXPECT_TRUE(claim(10).empty());
  auto held_of_off = [&] {  // its held rows: 10 x held + 1 each, summed
    return Sql(
        "SELECT COALESCE(SUM(held * 10 + 1), 0) FROM deliveries WHERE held <> 0 AND "
        "subscription_id = " +
        std::to_string(off.id.value));
  };
  if (sqlite) {
    EXPECT_EQ(held_of_off(), 31) << "one row, held 3";
  }
  // Enabled, still paused: still not sent; (SQLite) let go of, then held for the pause, for good.
  off.enabled = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(off).has_value()); });
  EXPECT_TRUE(claim(10).empty());
  EXPECT_TRUE(claim(10).empty());
  if (sqlite) {
    EXPECT_EQ(held_of_off(), 11) << "one row, held 1";
  }
  // Unpaused too: its row is sent.
  off.paused = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(off).has_value()); });
  {
    std::vector<DeliveryJob> jobs = claim(10);
    ASSERT_EQ(jobs.size(), 1u) << "the recovered row, once enabled and unpaused";
    EXPECT_EQ(jobs[0].subscription, off.id);
    W([&](Txn& tx) {
      EXPECT_TRUE(
          tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, now)})
              ->empty());
    });
  }
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteSubscription(a, off.id).value()); });
  // Unpaused and paused again before any claim: still nothing.
  s.paused = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  s.paused = true;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  EXPECT_TRUE(claim(10).empty());
  W([&](Txn& tx) { ASSERT_TRUE(tx.DeleteSubscription(a, gone.id).value()); });
  if (sqlite) {
    // A cancel lets go of what it cancels: a row that Redeliver reopens later must not come
    // back held.
    EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE held <> 0 AND status NOT IN "
                  "('pending', 'failed')"),
              0);
  }
  s.paused = false;
  W([&](Txn& tx) { ASSERT_TRUE(tx.UpdateSubscription(s).has_value()); });
  std::vector<std::string> got;
  for (const DeliveryJob& j : claim(10)) {
    EXPECT_EQ(j.subscription, s.id);
    got.push_back(j.event_id);
  }
  EXPECT_EQ(got, events) << "every row, oldest due first";
  EXPECT_TRUE(claim(10).empty());
  if (sqlite) {
    EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE held = 1"), 0);
  }
}

// =============================================================================================
// --- test webhooks and delivery stats (CONTRACT §13; routes-b) ---

TEST_P(StoreConformance, TestEventsAreSentOnceAndCountedNowhere) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);  // ordered
  // An open delivery about target 1 (leased elsewhere), and a later one about the same target
  // that ordering holds back: a test event has no target and waits for neither.
  auto first = Publish(MakeEvent(a, 1, kT0), {s.id});
  auto later = Publish(MakeEvent(a, 1, kT0 + 1), {s.id});
  W([&](Txn& tx) { ASSERT_TRUE(tx.ReleaseLeases(kPublisher, {later[0].id}).has_value()); });
  const std::string test_id = "evt_" + ids_.Next(kT0 + 10);
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertTestEvent(a, s.id, test_id, "ordinavo.test",
                                   R"({"subscriptionId":1,"message":"hi"})", kT0 + 10)
                    .has_value());
  });
  R([&](Txn& tx) {
    auto listed = tx.ListEvents(a, EventFilter{}, Page{}).value();
    EXPECT_EQ(listed.rows.size(), 2u);
    for (const auto& e : listed.rows) EXPECT_NE(e.record.event_id, test_id);
    EventFilter mine;
    mine.client = c.id;
    for (const auto& e : tx.ListEvents(a, mine, Page{}).value().rows) {
      EXPECT_NE(e.record.event_id, test_id);
    }
    auto got = tx.GetEvent(a, test_id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->test_type, "ordinavo.test");
    EXPECT_FALSE(got->record.target_id);
    EXPECT_FALSE(tx.GetEvent(b, test_id).value());
    EXPECT_FALSE(tx.GetEvent(a, first[0].event_id).value()->test_type);
  });
  R([&](Txn& tx) { EXPECT_EQ(tx.NextDueAt().value(), kT0 + 1); });

  std::vector<DeliveryJob> claimed;
  W([&](Txn& tx) { claimed = tx.ClaimDue(kPublisher, kT0 + 20, kT0 + 1000, 10).value(); });
  ASSERT_EQ(claimed.size(), 1u);  // the test one; `later` waits behind `first`
  EXPECT_EQ(claimed[0].event_id, test_id);
  EXPECT_TRUE(claimed[0].test);
  EXPECT_EQ(claimed[0].event_type, "ordinavo.test");
  EXPECT_EQ(claimed[0].data_json, R"({"subscriptionId":1,"message":"hi"})");
  EXPECT_EQ(claimed[0].attempts, 0);

  // A failure asked to be retried is final: dead, no next attempt, no failure streak.
  W([&](Txn& tx) {
    Outcome o = MakeOutcome(claimed[0], DeliveryStatus::kFailed, kT0 + 30, kT0 + 5000);
    o.test = true;
    auto stale = tx.RecordOutcomes(kPublisher, {o});
    ASSERT_TRUE(stale.has_value());
    EXPECT_TRUE(stale->empty());
  });
  auto v = Deliveries(a, test_id);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].status, DeliveryStatus::kDead);
  EXPECT_FALSE(v[0].next_attempt_at);
  ASSERT_EQ(v[0].attempts.size(), 1u);
  EXPECT_EQ(v[0].attempts[0].http_status, 500);
  auto sub = GetSub(a, s.id);
  EXPECT_FALSE(sub->failing_since);
  EXPECT_FALSE(sub->last_success_at);
  R([&](Txn& tx) {
    EXPECT_EQ(tx.GetFailureStreak(a, s.id).value().attempts, 0);
    EXPECT_EQ(tx.NextDueAt().value(), kT0 + 1);  // only `later`, still held back
  });
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.ClaimDue(kPublisher, kT0 + 10'000, kT0 + 20'000, 10)->empty());
    // Never sent again: neither redelivered nor recovered.
    EXPECT_EQ(tx.Redeliver(a, test_id, std::nullopt, std::nullopt, kT0 + 40)->reopened, 0);
    EXPECT_EQ(tx.RecoverDeliveries(a, s.id, kT0, kT0 + 40).value(), 0);
  });
  EXPECT_EQ(Deliveries(a, test_id)[0].status, DeliveryStatus::kDead);

  // In the subscription's delivery log, marked.
  R([&](Txn& tx) {
    auto log = tx.ListAttempts(a, s.id, AttemptFilter{}, Page{}).value();
    ASSERT_EQ(log.rows.size(), 1u);
    EXPECT_EQ(log.rows[0].event_id, test_id);
    EXPECT_EQ(log.rows[0].event_type, "ordinavo.test");
    EXPECT_TRUE(log.rows[0].test);
    EXPECT_EQ(log.rows[0].status, DeliveryStatus::kDead);
  });

  // A test that succeeds leaves lastSuccessAt alone too; a catalog example keeps its type.
  const std::string example_id = "evt_" + ids_.Next(kT0 + 50);
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertTestEvent(a, s.id, example_id, "appointment.completed", "{}", kT0 + 50)
                    .has_value());
  });
  W([&](Txn& tx) {
    auto jobs = tx.ClaimDue(kPublisher, kT0 + 60, kT0 + 1000, 10).value();
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_TRUE(jobs[0].test);
    EXPECT_EQ(jobs[0].event_type, "appointment.completed");
    ASSERT_TRUE(
        tx.RecordOutcomes(kPublisher, {MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, kT0 + 70)})
            .has_value());
  });
  EXPECT_FALSE(GetSub(a, s.id)->last_success_at);
  R([&](Txn& tx) {
    auto got = tx.GetEvent(a, example_id).value();
    ASSERT_TRUE(got);
    EXPECT_EQ(got->test_type, "appointment.completed");
    EXPECT_EQ(got->record.type, EventType::kAppointmentCompleted);
    EXPECT_EQ(tx.ListEvents(a, EventFilter{}, Page{}).value().rows.size(), 2u);
  });

  // An ordinary delivery still counts: the test flag is per delivery, not per subscription.
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(first[0], DeliveryStatus::kFailed,
                                                           kT0 + 80, kT0 + 9000)})
                    .has_value());
  });
  EXPECT_EQ(GetSub(a, s.id)->failing_since, kT0 + 80);
}

TEST_P(StoreConformance, AttemptStatsBucketsOneSubscriptionsAttempts) {
  TenantId a = NewTenant("a");
  TenantId b = NewTenant("b");
  Client c = NewClient(a);
  Subscription s = NewSubscription(a, c.id);
  Subscription other = NewSubscription(a, c.id);
  // One delivery per attempt: (subscription, time, HTTP status or none, duration).
  struct Row {
    SubscriptionId sub;
    UnixMs at;
    std::optional<int> status;
    std::int64_t ms;
  };
  const UnixMs since = kT0 + 1'000'000;
  const std::vector<Row> rows = {
      {s.id, since - 1, 200, 999},     // before the window
      {s.id, since, 200, 10},          // bucket 0
      {s.id, since + 400, 503, 30},    // bucket 0
      {s.id, since + 999, 204, 20},    // bucket 0
      {s.id, since + 2500, {}, 5000},  // bucket 2: a timeout, no status
      {s.id, since + 2600, 302, 7},    // bucket 2: a redirect is a failure
      {s.id, since + 5000, 200, 1},    // after the window
      {other.id, since + 10, 500, 77},
  };
  std::vector<Outcome> outcomes;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto jobs =
        Publish(MakeEvent(a, static_cast<std::int64_t>(100 + i), kT0 + static_cast<UnixMs>(i)),
                {rows[i].sub});
    ASSERT_EQ(jobs.size(), 1u);
    Outcome o = MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, rows[i].at);
    o.attempt.http_status = rows[i].status;
    o.attempt.duration_ms = rows[i].ms;
    outcomes.push_back(std::move(o));
  }
  W([&](Txn& tx) { ASSERT_TRUE(tx.RecordOutcomes(kPublisher, outcomes).has_value()); });
  // A test attempt in bucket 0 counts nowhere.
  const std::string test_id = "evt_" + ids_.Next(since);
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertTestEvent(a, s.id, test_id, "ordinavo.test", "{}", since).has_value());
    auto jobs = tx.ClaimDue(kPublisher, since, since + 60'000, 10).value();
    ASSERT_EQ(jobs.size(), 1u);
    Outcome o = MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, since + 5);
    o.attempt.duration_ms = 100000;
    o.test = true;
    ASSERT_TRUE(tx.RecordOutcomes(kPublisher, {o}).has_value());
  });

  std::vector<StatsBucket> got;
  R([&](Txn& tx) { got = tx.AttemptStats(a, s.id, StatsWindow{since, 1000, 5}).value(); });
  ASSERT_EQ(got.size(), 5u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].start, since + static_cast<UnixMs>(i) * 1000);
  }
  EXPECT_EQ(got[0].succeeded, 2);
  EXPECT_EQ(got[0].failed, 1);
  EXPECT_EQ(got[0].p50_ms, 20);  // nearest rank of {10, 20, 30}
  EXPECT_EQ(got[0].p95_ms, 30);
  EXPECT_EQ(got[1].succeeded + got[1].failed, 0);
  EXPECT_FALSE(got[1].p50_ms);
  EXPECT_FALSE(got[1].p95_ms);
  EXPECT_EQ(got[2].succeeded, 0);
  EXPECT_EQ(got[2].failed, 2);
  EXPECT_EQ(got[2].p50_ms, 7);
  EXPECT_EQ(got[2].p95_ms, 5000);
  EXPECT_EQ(got[4].succeeded + got[4].failed, 0);

  R([&](Txn& tx) {
    // The other subscription's own attempts; another tenant sees none.
    auto o = tx.AttemptStats(a, other.id, StatsWindow{since, 1000, 1}).value();
    ASSERT_EQ(o.size(), 1u);
    EXPECT_EQ(o[0].failed, 1);
    EXPECT_EQ(o[0].p95_ms, 77);
    auto hidden = tx.AttemptStats(b, s.id, StatsWindow{since, 1000, 5}).value();
    ASSERT_EQ(hidden.size(), 5u);
    EXPECT_EQ(hidden[0].succeeded + hidden[0].failed, 0);
    EXPECT_TRUE(tx.AttemptStats(a, s.id, StatsWindow{since, 1000, 0}).value().empty());
    // Percentiles over many: 1..100 ms → p50 50, p95 95.
  });
  std::vector<Outcome> many;
  for (int i = 1; i <= 100; ++i) {
    auto jobs = Publish(MakeEvent(a, 1000 + i, kT0 + 100 + i), {other.id});
    Outcome o = MakeOutcome(jobs[0], DeliveryStatus::kSucceeded, since + 3000 + i);
    o.attempt.duration_ms = 101 - i;
    many.push_back(std::move(o));
  }
  W([&](Txn& tx) { ASSERT_TRUE(tx.RecordOutcomes(kPublisher, many).has_value()); });
  R([&](Txn& tx) {
    auto o = tx.AttemptStats(a, other.id, StatsWindow{since + 3000, 1000, 1}).value();
    ASSERT_EQ(o.size(), 1u);
    EXPECT_EQ(o[0].succeeded, 100);
    EXPECT_EQ(o[0].p50_ms, 50);
    EXPECT_EQ(o[0].p95_ms, 95);
  });
}

// --- shared payloads (issue 8: bytes per waiting delivery) ---

// The deliveries of `subs` for `e`, each with the rendered text `texts[i]` (a copy of its own:
// sharing is found by comparing texts), inserted unleased (claimable) or leased by `owner`.
std::vector<DeliveryJob> PublishRendered(Txn& tx, const StoredEvent& e,
                                         const std::vector<SubscriptionId>& subs,
                                         const std::vector<std::string>& texts,
                                         const std::string& owner) {
  std::vector<NewDelivery> rows;
  rows.reserve(subs.size());
  for (std::size_t i = 0; i < subs.size(); ++i) {
    rows.push_back(NewDelivery{e.record.tenant, e.record.event_id, subs[i],
                               std::string(texts[i].data(), texts[i].size()),
                               e.record.accepted_at});
  }
  auto r = tx.InsertDeliveries(rows, owner, e.record.accepted_at, kT0 + 60'000);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r.value_or(std::vector<DeliveryJob>{});
}

// Subscriptions that render an event identically share one stored rendering; one whose options
// render it differently gets its own; another event gets its own even when its text is the
// same (a payload goes with its event). Every delivery's job, claim and detail show exactly its
// own payload, and no delivery row keeps a copy of the text.
TEST_P(StoreConformance, PayloadsAreSharedBetweenIdenticalRenderings) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  Subscription s3 = NewSubscription(a, c.id);
  // Long enough for SQLite to store them compressed (payload_codec.h), with text that must come
  // back byte for byte: non-ASCII, escapes, numbers no double would keep.
  const std::string notes =
      R"("notes":"Kühlraum 2: Dichtung geprüft, Dichtung getauscht, Dichtung geprüft "ok" é )"
      R"(Zählerstand 12345678901234567890.10 Kühlraum 2 Kühlraum 2")";
  const std::string plain = R"({"appointmentId":441,"summary":"plain",)" + notes + "}";
  const std::string billed =
      R"({"appointmentId":441,"summary":"plain",)" + notes + R"(,"billing":{"n":"1.50"}})";
  StoredEvent e1 = MakeEvent(a, 1, kT0);
  StoredEvent e2 = MakeEvent(a, 2, kT0 + 1);
  std::vector<DeliveryJob> leased;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvent(e1).has_value());
    ASSERT_TRUE(tx.InsertEvent(e2).has_value());
    leased = PublishRendered(tx, e1, {s1.id, s2.id, s3.id}, {plain, plain, billed}, kPublisher);
    // Unleased: claimed below.
    PublishRendered(tx, e2, {s1.id, s2.id}, {plain, plain}, "");
  });
  ASSERT_EQ(leased.size(), 3u);
  std::map<std::int64_t, std::string> want{
      {s1.id.value, plain}, {s2.id.value, plain}, {s3.id.value, billed}};
  for (const DeliveryJob& j : leased) EXPECT_EQ(j.data_json, want.at(j.subscription.value));

  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads"), 3) << "e1: plain and billed; e2: plain";
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads WHERE event_id = '" + e1.record.event_id + "'"), 2);
  EXPECT_EQ(Sql("SELECT COUNT(DISTINCT payload_id) FROM deliveries"), 3);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries WHERE payload_id IS NULL OR data_json <> ''"), 0)
      << "a delivery row keeps no copy of its payload";

  std::vector<DeliveryJob> claimed;
  W([&](Txn& tx) { claimed = tx.ClaimDue(kPublisher, kT0 + 10, kT0 + 1000, 10).value(); });
  ASSERT_EQ(claimed.size(), 2u);
  for (const DeliveryJob& j : claimed) {
    EXPECT_EQ(j.event_id, e2.record.event_id);
    EXPECT_EQ(j.data_json, plain);
  }
  // The detail of each delivery (the payload sent) after an attempt.
  W([&](Txn& tx) {
    std::vector<Outcome> outcomes;
    outcomes.reserve(leased.size());
    for (const DeliveryJob& j : leased) {
      outcomes.push_back(MakeOutcome(j, DeliveryStatus::kFailed, kT0 + 20, kT0 + 5000));
    }
    EXPECT_TRUE(tx.RecordOutcomes(kPublisher, outcomes).value().empty());
  });
  auto views = Deliveries(a, e1.record.event_id);
  ASSERT_EQ(views.size(), 3u);
  for (const DeliveryView& v : views) {
    EXPECT_EQ(v.data_json, want.at(v.subscription.value)) << v.subscription.value;
    EXPECT_EQ(v.attempts.size(), 1u);
  }
  for (const DeliveryView& v : Deliveries(a, e2.record.event_id)) EXPECT_EQ(v.data_json, plain);
  // Test webhooks too: their payload is stored the same way and claimed as sent.
  const std::string test_id = "evt_" + ids_.Next(kT0 + 30);
  W([&](Txn& tx) {
    ASSERT_TRUE(
        tx.InsertTestEvent(a, s3.id, test_id, "ordinavo.test", R"({"message":"hi"})", kT0 + 30)
            .has_value());
  });
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads WHERE event_id = '" + test_id + "'"), 1);
  W([&](Txn& tx) { claimed = tx.ClaimDue(kPublisher, kT0 + 40, kT0 + 1000, 10).value(); });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].data_json, R"({"message":"hi"})");
  ASSERT_EQ(Deliveries(a, test_id).size(), 1u);
  EXPECT_EQ(Deliveries(a, test_id)[0].data_json, R"({"message":"hi"})");
}

// One InsertDeliveries call for many events (POST /v1/events/batch), each rendered two ways,
// more rows than one multi-row statement holds: every event gets its own payloads (the same text
// for two events is stored twice), and every delivery refers to the payload of its own event and
// rendering, whatever order the database returns the inserted rows in.
TEST_P(StoreConformance, BatchOfEventsGetsEachItsOwnPayloads) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  Subscription s3 = NewSubscription(a, c.id);
  constexpr int kEvents = 130;
  std::vector<StoredEvent> events;
  std::vector<NewDelivery> rows;
  auto plain = [](int k) { return R"({"appointmentId":)" + std::to_string(k) + "}"; };
  auto billed = [](int k) {
    return R"({"appointmentId":)" + std::to_string(k) + R"(,"billing":{"n":"1.50"}})";
  };
  // Long enough to be packed on SQLite (payload_codec.h): packed and plain renderings go in
  // statements of their own, and each must still find its delivery.
  auto long_text = [](int k) {
    std::string note;
    for (int i = 0; i < 40; ++i) note += "visit " + std::to_string(k) + " ";
    return R"({"appointmentId":)" + std::to_string(k) + R"(,"note":")" + note + R"("})";
  };
  auto first_of = [&](int k) {
    if (k == 1) return plain(0);
    return k % 4 == 2 ? long_text(k) : plain(k);
  };
  for (int k = 0; k < kEvents; ++k) {
    events.push_back(MakeEvent(a, k + 1, kT0 + k));
    const StoredEvent& e = events.back();
    // Every third event renders the same for all: one payload. The others: s2 gets billing.
    const std::string second = k % 3 == 0 ? plain(k) : billed(k);
    // The text of event 0 for event 1 too: still a payload of each event. Every fourth long.
    const std::string first = first_of(k);
    rows.push_back(NewDelivery{a, e.record.event_id, s1.id, first, e.record.accepted_at});
    rows.push_back(NewDelivery{a, e.record.event_id, s2.id, second, e.record.accepted_at});
    rows.push_back(NewDelivery{a, e.record.event_id, s3.id, first, e.record.accepted_at});
  }
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvents(events).has_value());
    auto jobs = tx.InsertDeliveries(rows, kPublisher, kT0, kT0 + 60'000);
    ASSERT_TRUE(jobs.has_value()) << jobs.error().message;
    EXPECT_EQ(jobs->size(), rows.size());
  });
  int distinct = 0;  // per event: its two texts, or one when both are the same
  for (int k = 0; k < kEvents; ++k)
    distinct += first_of(k) == (k % 3 == 0 ? plain(k) : billed(k)) ? 1 : 2;
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads"), distinct);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries d JOIN payloads p ON p.id = d.payload_id WHERE "
                "p.event_id <> d.event_id"),
            0)
      << "a delivery refers to a payload of another event";
  for (int k = 0; k < kEvents; ++k) {
    const std::string first = first_of(k);
    std::map<std::int64_t, std::string> want{{s1.id.value, first},
                                             {s2.id.value, k % 3 == 0 ? plain(k) : billed(k)},
                                             {s3.id.value, first}};
    auto views = Deliveries(a, events[static_cast<std::size_t>(k)].record.event_id);
    ASSERT_EQ(views.size(), 3u) << k;
    for (const DeliveryView& v : views) {
      EXPECT_EQ(v.data_json, want.at(v.subscription.value)) << "event " << k;
    }
  }
  // One short rendering beside two long ones: on SQLite a statement of one row (its id chosen
  // by SQLite), then one of two naming theirs.
  StoredEvent last = MakeEvent(a, kEvents + 1, kT0 + kEvents);
  const std::map<std::int64_t, std::string> want{{s1.id.value, long_text(kEvents)},
                                                 {s2.id.value, plain(kEvents)},
                                                 {s3.id.value, long_text(kEvents + 1)}};
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvents({last}).has_value());
    std::vector<NewDelivery> three;
    three.reserve(want.size());
    for (const auto& [sub, text] : want) {
      three.push_back(
          NewDelivery{a, last.record.event_id, SubscriptionId(sub), text, last.record.accepted_at});
    }
    auto jobs = tx.InsertDeliveries(three, kPublisher, kT0, kT0 + 60'000);
    ASSERT_TRUE(jobs.has_value()) << jobs.error().message;
    EXPECT_EQ(jobs->size(), 3u);
  });
  auto views = Deliveries(a, last.record.event_id);
  ASSERT_EQ(views.size(), 3u);
  for (const DeliveryView& v : views) EXPECT_EQ(v.data_json, want.at(v.subscription.value));
}

// Retention removes an event's payloads with it, and only then: no payload outlives its event,
// none goes while a delivery still refers to it.
TEST_P(StoreConformance, RetentionRemovesPayloadsWithTheirEvents) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  Subscription s2 = NewSubscription(a, c.id);
  StoredEvent done = MakeEvent(a, 1, kT0);
  StoredEvent open = MakeEvent(a, 2, kT0 + 1);
  std::vector<DeliveryJob> done_jobs;
  std::vector<DeliveryJob> open_jobs;
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvent(done).has_value());
    ASSERT_TRUE(tx.InsertEvent(open).has_value());
    done_jobs = PublishRendered(tx, done, {s1.id, s2.id}, {"{\"a\":1}", "{\"b\":2}"}, kPublisher);
    open_jobs = PublishRendered(tx, open, {s1.id, s2.id}, {"{\"a\":1}", "{\"a\":1}"}, kPublisher);
  });
  ASSERT_EQ(done_jobs.size(), 2u);
  ASSERT_EQ(open_jobs.size(), 2u);
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(done_jobs[0], DeliveryStatus::kSucceeded, kT0 + 10),
                                   MakeOutcome(done_jobs[1], DeliveryStatus::kDead, kT0 + 10),
                                   MakeOutcome(open_jobs[0], DeliveryStatus::kSucceeded, kT0 + 10),
                                   MakeOutcome(open_jobs[1], DeliveryStatus::kFailed, kT0 + 10,
                                               kT0 + 3'600'000)})
                    .value()
                    .empty());
  });
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads"), 3);
  PurgeResult r;
  W([&](Txn& tx) { r = tx.PurgeEvents("", kT0 + 5'000, 100).value(); });
  EXPECT_EQ(r.events, 1);
  EXPECT_EQ(r.kept, 1);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads WHERE event_id = '" + done.record.event_id + "'"), 0)
      << "the purged event's payloads are gone";
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads WHERE event_id = '" + open.record.event_id + "'"), 1)
      << "the kept event's payload stays";
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads p WHERE NOT EXISTS (SELECT 1 FROM events e WHERE "
                "e.event_id = p.event_id)"),
            0)
      << "orphans";
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries d WHERE d.payload_id IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM payloads p WHERE p.id = d.payload_id)"),
            0)
      << "dangling references";
  for (const DeliveryView& v : Deliveries(a, open.record.event_id)) {
    EXPECT_EQ(v.data_json, "{\"a\":1}");
  }
  // Once the open delivery has finished, the event and its payload go together.
  W([&](Txn& tx) {
    auto retry = tx.ClaimDue(kPublisher, kT0 + 3'600'000, kT0 + 3'700'000, 10).value();
    ASSERT_EQ(retry.size(), 1u);
    EXPECT_EQ(retry[0].data_json, "{\"a\":1}");
    EXPECT_TRUE(tx.RecordOutcomes(kPublisher, {MakeOutcome(retry[0], DeliveryStatus::kDead,
                                                           kT0 + 3'600'010, std::nullopt, 2)})
                    .value()
                    .empty());
  });
  W([&](Txn& tx) { r = tx.PurgeEvents("", kT0 + 5'000, 100).value(); });
  EXPECT_EQ(r.events, 1);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM payloads"), 0);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries"), 0);
}

// A delivery written before the payloads table (SQLite migration 8, PostgreSQL 6) keeps its
// rendered data in its own row and no payload: it is claimed, shown and purged as before. The
// migration leaves such rows as they are (store/sqlite/schema.cpp says why); the row is made
// here as it was stored then.
TEST_P(StoreConformance, DeliveryStoredBeforePayloadsStillDelivers) {
  TenantId a = NewTenant("a");
  Client c = NewClient(a);
  Subscription s1 = NewSubscription(a, c.id);
  StoredEvent e = MakeEvent(a, 1, kT0);
  W([&](Txn& tx) {
    ASSERT_TRUE(tx.InsertEvent(e).has_value());
    PublishRendered(tx, e, {s1.id}, {"{\"new\":1}"}, "");
  });
  const std::string old = R"({"appointmentId":441,"stored":"before migration"})";
  Sql("UPDATE deliveries SET payload_id = NULL, data_json = '" + old + "'");
  Sql("DELETE FROM payloads");
  std::vector<DeliveryJob> claimed;
  W([&](Txn& tx) { claimed = tx.ClaimDue(kPublisher, kT0 + 10, kT0 + 1000, 10).value(); });
  ASSERT_EQ(claimed.size(), 1u);
  EXPECT_EQ(claimed[0].data_json, old);
  W([&](Txn& tx) {
    EXPECT_TRUE(tx.RecordOutcomes(kPublisher,
                                  {MakeOutcome(claimed[0], DeliveryStatus::kSucceeded, kT0 + 20)})
                    .value()
                    .empty());
  });
  auto views = Deliveries(a, e.record.event_id);
  ASSERT_EQ(views.size(), 1u);
  EXPECT_EQ(views[0].data_json, old);
  EXPECT_EQ(views[0].status, DeliveryStatus::kSucceeded);
  PurgeResult r;
  W([&](Txn& tx) { r = tx.PurgeEvents("", kT0 + 5'000, 100).value(); });
  EXPECT_EQ(r.events, 1);
  EXPECT_EQ(Sql("SELECT COUNT(*) FROM deliveries"), 0);
}

}  // namespace
}  // namespace outbound::store::testing
