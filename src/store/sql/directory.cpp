// SqlTxn: the directory (customers, locations, contacts, their external ids) and targets.
#include "store/sql/txn_util.h"

namespace outbound::store::sql {

using namespace util;  // NOLINT(google-build-using-namespace): the shared helpers of store/sql

// ---------------------------------------------------------------------------------------------
// Directory

Status SqlTxn::CheckExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                                const ExternalIds& ids) {
  for (const auto& [system, external] : ids) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT entity_id FROM external_ids WHERE tenant_id = "
                                           "?1 AND kind = ?2 AND source_system = ?3 AND "
                                           "external_id = ?4"));
    s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, system).Bind(4, external);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && s.Int(0) != entity) {
      std::string message = "external id \"";
      message += external;
      message += "\" in source system \"";
      message += system;
      message += "\" is already used by ";
      message += KindName(kind);
      message += " ";
      message += std::to_string(s.Int(0));
      core::Error e = core::Error::Conflict("external_id_conflict", std::move(message));
      e.field = "externalIds." + system;
      return Fail(std::move(e));
    }
  }
  return {};
}

Status SqlTxn::ReplaceExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity,
                                  const ExternalIds& ids) {
  // SQLite's update hook does not report changes to a WITHOUT ROWID table such as external_ids.
  // A target's ids (imports) drop the cache too: simpler, and LoadSnapshot refills it.
  DirectoryTablesChanged();
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("DELETE FROM external_ids WHERE tenant_id = ?1 AND "
                                           "kind = ?2 AND entity_id = ?3"));
    s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, entity);
    OB_RETURN_IF_ERROR(s.Run());
  }
  for (const auto& [system, external] : ids) {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("INSERT INTO external_ids(tenant_id, kind, entity_id, "
                                           "source_system, external_id) VALUES "
                                           "(?1, ?2, ?3, ?4, ?5)"));
    s.Bind(1, tenant.value)
        .Bind(2, KindCode(kind))
        .Bind(3, entity)
        .Bind(4, system)
        .Bind(5, external);
    OB_RETURN_IF_ERROR(s.Run());
  }
  return {};
}

Result<ExternalIds> SqlTxn::LoadExternalIds(TenantId tenant, EntityKind kind, std::int64_t entity) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT source_system, external_id FROM external_ids "
                                         "WHERE tenant_id = ?1 AND kind = ?2 AND entity_id = ?3"));
  s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, entity);
  ExternalIds ids;
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    ids.emplace(s.Text(0), s.Text(1));
  }
  return ids;
}

Status SqlTxn::UpsertCustomer(const Customer& c) {
  marked_.reset();  // what MarkTarget read may change
  OB_RETURN_IF_ERROR(CheckExternalIds(c.tenant, EntityKind::kCustomer, c.id, c.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO customers(tenant_id, id, customer_number, name, "
                         "internal_notes) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(tenant_id, id) "
                         "DO UPDATE SET customer_number = excluded.customer_number, name = "
                         "excluded.name, internal_notes = excluded.internal_notes"));
  s.Bind(1, c.tenant.value)
      .Bind(2, c.id)
      .Bind(3, c.customer_number)
      .Bind(4, c.name)
      .Bind(5, c.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(c.tenant, EntityKind::kCustomer, c.id, c.external_ids);
}

Status SqlTxn::UpsertLocation(const Location& l) {
  marked_.reset();  // what MarkTarget read may change
  OB_RETURN_IF_ERROR(CheckExternalIds(l.tenant, EntityKind::kLocation, l.id, l.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO locations(tenant_id, id, customer_id, name, address, "
                         "access_secret, internal_notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON "
                         "CONFLICT(tenant_id, id) DO UPDATE SET customer_id = "
                         "excluded.customer_id, name = excluded.name, address = "
                         "excluded.address, access_secret = excluded.access_secret, "
                         "internal_notes = excluded.internal_notes"));
  s.Bind(1, l.tenant.value)
      .Bind(2, l.id)
      .Bind(3, l.customer_id)
      .Bind(4, l.name)
      .Bind(5, l.address)
      .Bind(6, l.access_secret)
      .Bind(7, l.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(l.tenant, EntityKind::kLocation, l.id, l.external_ids);
}

Status SqlTxn::UpsertContact(const Contact& c) {
  marked_.reset();  // what MarkTarget read may change
  OB_RETURN_IF_ERROR(CheckExternalIds(c.tenant, EntityKind::kContact, c.id, c.external_ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO contacts(tenant_id, id, customer_id, display_name, phone, "
                         "email, internal_notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON "
                         "CONFLICT(tenant_id, id) DO UPDATE SET customer_id = "
                         "excluded.customer_id, display_name = excluded.display_name, phone = "
                         "excluded.phone, email = excluded.email, internal_notes = "
                         "excluded.internal_notes"));
  s.Bind(1, c.tenant.value)
      .Bind(2, c.id)
      .Bind(3, c.customer_id)
      .Bind(4, c.display_name)
      .Bind(5, c.phone)
      .Bind(6, c.email)
      .Bind(7, c.internal_notes);
  OB_RETURN_IF_ERROR(s.Run());
  return ReplaceExternalIds(c.tenant, EntityKind::kContact, c.id, c.external_ids);
}

Result<std::optional<Customer>> SqlTxn::GetCustomer(TenantId tenant, std::int64_t id) {
  Customer c;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_number, name, internal_notes FROM "
                                           "customers WHERE tenant_id = ?1 AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Customer>();
    c.tenant = tenant;
    c.id = id;
    c.customer_number = s.Text(0);
    c.name = s.Text(1);
    c.internal_notes = s.OptText(2);
  }
  OB_ASSIGN_OR_RETURN(c.external_ids, LoadExternalIds(tenant, EntityKind::kCustomer, id));
  return std::optional<Customer>(std::move(c));
}

Result<std::optional<Location>> SqlTxn::GetLocation(TenantId tenant, std::int64_t id) {
  Location l;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_id, name, address, access_secret, "
                                           "internal_notes FROM locations WHERE tenant_id = ?1 "
                                           "AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Location>();
    l.tenant = tenant;
    l.id = id;
    l.customer_id = s.Int(0);
    l.name = s.Text(1);
    l.address = s.OptText(2);
    l.access_secret = s.OptText(3);
    l.internal_notes = s.OptText(4);
  }
  OB_ASSIGN_OR_RETURN(l.external_ids, LoadExternalIds(tenant, EntityKind::kLocation, id));
  return std::optional<Location>(std::move(l));
}

Result<std::optional<Contact>> SqlTxn::GetContact(TenantId tenant, std::int64_t id) {
  Contact c;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT customer_id, display_name, phone, email, "
                                           "internal_notes FROM contacts WHERE tenant_id = ?1 "
                                           "AND id = ?2"));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Contact>();
    c.tenant = tenant;
    c.id = id;
    c.customer_id = s.Int(0);
    c.display_name = s.Text(1);
    c.phone = s.OptText(2);
    c.email = s.OptText(3);
    c.internal_notes = s.OptText(4);
  }
  OB_ASSIGN_OR_RETURN(c.external_ids, LoadExternalIds(tenant, EntityKind::kContact, id));
  return std::optional<Contact>(std::move(c));
}

Result<DirectoryReferences> SqlTxn::CountReferences(TenantId tenant, EntityKind kind,
                                                    std::int64_t id) {
  DirectoryReferences refs;
  // Each count walks an index of migration 4 (targets_customer, locations_customer, ...).
  auto count = [&](const char* sql) -> Result<std::int64_t> {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    return row ? s.Int(0) : 0;
  };
  switch (kind) {
    case EntityKind::kCustomer: {
      OB_ASSIGN_OR_RETURN(refs.targets, count("SELECT COUNT(*) FROM targets WHERE tenant_id = ?1 "
                                              "AND customer_id = ?2"));
      OB_ASSIGN_OR_RETURN(refs.locations, count("SELECT COUNT(*) FROM locations WHERE tenant_id "
                                                "= ?1 AND customer_id = ?2"));
      OB_ASSIGN_OR_RETURN(refs.contacts, count("SELECT COUNT(*) FROM contacts WHERE tenant_id = "
                                               "?1 AND customer_id = ?2"));
      break;
    }
    case EntityKind::kLocation: {
      OB_ASSIGN_OR_RETURN(refs.targets, count("SELECT COUNT(*) FROM targets WHERE tenant_id = ?1 "
                                              "AND location_id = ?2"));
      break;
    }
    case EntityKind::kContact: {
      OB_ASSIGN_OR_RETURN(refs.targets, count("SELECT COUNT(*) FROM targets WHERE tenant_id = ?1 "
                                              "AND contact_id = ?2"));
      break;
    }
    case EntityKind::kTarget:
      break;
  }
  return refs;
}

namespace {
// "2 targets and 1 location": the non-zero counts, in that order.
std::string DescribeReferences(const DirectoryReferences& refs) {
  std::vector<std::string> parts;
  auto add = [&](std::int64_t n, const char* one, const char* many) {
    if (n > 0) parts.push_back(std::to_string(n) + " " + (n == 1 ? one : many));
  };
  add(refs.targets, "target", "targets");
  add(refs.locations, "location", "locations");
  add(refs.contacts, "contact", "contacts");
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += i + 1 == parts.size() ? " and " : ", ";
    out += parts[i];
  }
  return out;
}
}  // namespace

Result<bool> SqlTxn::DeleteEntity(TenantId tenant, EntityKind kind, std::int64_t id) {
  marked_.reset();  // what MarkTarget read may change
  if (kind != EntityKind::kTarget) {
    OB_ASSIGN_OR_RETURN(DirectoryReferences refs, CountReferences(tenant, kind, id));
    if (refs.targets + refs.locations + refs.contacts > 0) {
      return Fail(core::Error::Conflict("in_use", std::string(KindName(kind)) + " " +
                                                      std::to_string(id) + " is referenced by " +
                                                      DescribeReferences(refs)));
    }
  }
  const char* sql = nullptr;
  switch (kind) {
    case EntityKind::kCustomer:
      sql = "DELETE FROM customers WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kLocation:
      sql = "DELETE FROM locations WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kContact:
      sql = "DELETE FROM contacts WHERE tenant_id = ?1 AND id = ?2";
      break;
    case EntityKind::kTarget:
      sql = "DELETE FROM targets WHERE tenant_id = ?1 AND id = ?2";
      if (c_.dialect() == Dialect::kSqlite) {
        // Its events stay listed (GET /v1/events?targetId=) without the row that holds their
        // chain's start (SQLite migration 13): all of them unlinked first.
        OB_ASSIGN_OR_RETURN(const ChainHead head, ReadChainHead(tenant.value, id));
        if (head.row != 0) OB_RETURN_IF_ERROR(UnlinkChain(tenant.value, id, head.row));
      }
      break;
  }
  std::int64_t changed = 0;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, tenant.value).Bind(2, id);
    OB_RETURN_IF_ERROR(s.Run());
    changed = c_.Changes();
  }
  if (changed == 0) return false;
  OB_RETURN_IF_ERROR(ReplaceExternalIds(tenant, kind, id, {}));
  return true;
}

Result<std::optional<std::int64_t>> SqlTxn::FindByExternalId(TenantId tenant, EntityKind kind,
                                                             std::string_view source_system,
                                                             std::string_view external_id) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("SELECT entity_id FROM external_ids WHERE tenant_id = "
                                         "?1 AND kind = ?2 AND source_system = ?3 AND "
                                         "external_id = ?4"));
  s.Bind(1, tenant.value).Bind(2, KindCode(kind)).Bind(3, source_system).Bind(4, external_id);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<std::int64_t>();
  return std::optional<std::int64_t>(s.Int(0));
}

// Directory lists: id order, the cursor is the last id; external ids loaded per row (a page is
// at most kMaxLimit rows, each one indexed lookup). `sql` selects id first and takes the tenant,
// the cursor and the limit as ?1, ?2, ?3; `read` makes a record of a row.
template <class T, class Read>
Result<PageResult<T>> SqlTxn::ListRecords(TenantId tenant, EntityKind kind, const char* sql,
                                          const Page& page, Read read) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  const int limit = Limit(page);
  std::vector<T> rows;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    s.Bind(1, tenant.value).Bind(2, after.value_or(-1)).Bind(3, limit + 1);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      T record = read(s);
      record.tenant = tenant;
      record.id = s.Int(0);
      rows.push_back(std::move(record));
    }
  }
  auto result = Paginate(std::move(rows), limit, [](const T& r) { return std::to_string(r.id); });
  for (auto& r : result.rows) {
    OB_ASSIGN_OR_RETURN(r.external_ids, LoadExternalIds(tenant, kind, r.id));
  }
  return result;
}

Result<PageResult<Customer>> SqlTxn::ListCustomers(TenantId tenant, const Page& page) {
  return ListRecords<Customer>(tenant, EntityKind::kCustomer,
                               "SELECT id, customer_number, name, internal_notes FROM customers "
                               "WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                               page, [](const Stmt& s) {
                                 Customer c;
                                 c.customer_number = s.Text(1);
                                 c.name = s.Text(2);
                                 c.internal_notes = s.OptText(3);
                                 return c;
                               });
}

Result<PageResult<Location>> SqlTxn::ListLocations(TenantId tenant, const Page& page) {
  return ListRecords<Location>(tenant, EntityKind::kLocation,
                               "SELECT id, customer_id, name, address, access_secret, "
                               "internal_notes FROM locations WHERE tenant_id = ?1 AND id > ?2 "
                               "ORDER BY id LIMIT ?3",
                               page, [](const Stmt& s) {
                                 Location l;
                                 l.customer_id = s.Int(1);
                                 l.name = s.Text(2);
                                 l.address = s.OptText(3);
                                 l.access_secret = s.OptText(4);
                                 l.internal_notes = s.OptText(5);
                                 return l;
                               });
}

Result<PageResult<Contact>> SqlTxn::ListContacts(TenantId tenant, const Page& page) {
  return ListRecords<Contact>(tenant, EntityKind::kContact,
                              "SELECT id, customer_id, display_name, phone, email, "
                              "internal_notes FROM contacts WHERE tenant_id = ?1 AND id > ?2 "
                              "ORDER BY id LIMIT ?3",
                              page, [](const Stmt& s) {
                                Contact c;
                                c.customer_id = s.Int(1);
                                c.display_name = s.Text(2);
                                c.phone = s.OptText(3);
                                c.email = s.OptText(4);
                                c.internal_notes = s.OptText(5);
                                return c;
                              });
}

// ---------------------------------------------------------------------------------------------
// Targets

Result<bool> SqlTxn::SetTargetStatus(TenantId tenant, TargetId id, std::string_view status,
                                     UnixMs now) {
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare("UPDATE targets SET status = ?3, updated_at = ?4 WHERE "
                                         "id = ?1 AND tenant_id = ?2"));
  s.Bind(1, id.value).Bind(2, tenant.value).Bind(3, status).Bind(4, now);
  {
    const FlagWhile neutral(TargetsNeutral());  // the cached targets keep their fields
    OB_RETURN_IF_ERROR(s.Run());
  }
  return c_.Changes() > 0;
}

namespace {

ExternalIds TargetIds(const Target& t) {
  ExternalIds ids = t.external_ids;
  if (!t.source_system.empty()) ids[t.source_system] = t.external_id;
  return ids;
}

// What MarkTarget and MarkTargets read of each target besides its row: the external ids of it
// and of its customer, location and contact, and those three records (LoadDirectoryInOne's
// statement). Each comes as JSON (NULL when there is none): the external ids as arrays of [kind,
// source system, external id], the records as arrays of their fields. ?3-?6: the kinds' codes.
#define OB_MARKED_SELECT                                                                         \
  "SELECT " OB_TARGET_COLS                                                                       \
  ", (SELECT json_agg(json_build_array(e.kind, e.source_system, e.external_id)) FROM "           \
  "external_ids e WHERE e.tenant_id = t.tenant_id AND ((e.kind = ?3 AND e.entity_id = t.id) OR " \
  "(e.kind = ?4 AND e.entity_id = t.customer_id) OR (e.kind = ?5 AND e.entity_id = "             \
  "t.location_id) OR (e.kind = ?6 AND e.entity_id = t.contact_id))), (SELECT "                   \
  "json_build_array(c.customer_number, c.name) FROM customers c WHERE c.tenant_id = "            \
  "t.tenant_id AND c.id = t.customer_id), (SELECT json_build_array(l.name) FROM locations l "    \
  "WHERE l.tenant_id = t.tenant_id AND l.id = t.location_id), (SELECT "                          \
  "json_build_array(k.display_name, k.phone, k.email) FROM contacts k WHERE k.tenant_id = "      \
  "t.tenant_id AND k.id = t.contact_id) FROM targets t "

void BindMarkedKinds(Stmt& s) {
  s.Bind(3, KindCode(EntityKind::kTarget))
      .Bind(4, KindCode(EntityKind::kCustomer))
      .Bind(5, KindCode(EntityKind::kLocation))
      .Bind(6, KindCode(EntityKind::kContact));
}

// A row of OB_MARKED_SELECT: the target (with its external ids), and its customer, location and
// contact into `snap`.
Result<Target> ReadMarked(const Stmt& s, core::TargetSnapshot& snap) {
  Target t = ReadTarget(s);
  const core::Error unread = core::Error::Internal("a target's directory records did not read");
  // Column `col` as a JSON array of `n` items (nullopt for NULL); false when it is not one.
  auto array = [&s, &unread](int col, std::size_t n, boost::json::value& v) -> Result<bool> {
    std::optional<std::string> text = s.OptText(col);
    if (!text) return false;
    boost::system::error_code ec;
    v = boost::json::parse(*text, ec);
    const boost::json::array* a = ec ? nullptr : v.if_array();
    if (a == nullptr || (n != 0 && a->size() != n)) return Fail(unread);
    return true;
  };
  auto text = [](const boost::json::value& v) -> std::optional<std::string> {
    if (const boost::json::string* str = v.if_string(); str != nullptr) return std::string(*str);
    return std::nullopt;
  };
  boost::json::value v;
  ExternalIds external[3];  // customer, location, contact
  OB_ASSIGN_OR_RETURN(bool any_ids, array(kTargetColCount, 0, v));
  if (any_ids) {
    for (const boost::json::value& item : v.get_array()) {
      const boost::json::array* e = item.if_array();
      if (e == nullptr || e->size() != 3 || !(*e)[0].is_int64() || !text((*e)[1]) ||
          !text((*e)[2])) {
        return Fail(unread);
      }
      const std::int64_t kind = (*e)[0].get_int64();
      ExternalIds* into = kind == KindCode(EntityKind::kTarget)     ? &t.external_ids
                          : kind == KindCode(EntityKind::kCustomer) ? &external[0]
                          : kind == KindCode(EntityKind::kLocation) ? &external[1]
                          : kind == KindCode(EntityKind::kContact)  ? &external[2]
                                                                    : nullptr;
      if (into != nullptr) into->emplace(*text((*e)[1]), *text((*e)[2]));
    }
  }
  OB_ASSIGN_OR_RETURN(bool customer, array(kTargetColCount + 1, 2, v));
  if (customer) {
    const boost::json::array& a = v.get_array();
    snap.customer = core::CustomerSnapshot{t.customer_id, text(a[0]).value_or(""),
                                           text(a[1]).value_or(""), std::move(external[0])};
  }
  OB_ASSIGN_OR_RETURN(bool location, array(kTargetColCount + 2, 1, v));
  if (location && t.location_id) {
    snap.location = core::LocationSnapshot{*t.location_id, text(v.get_array()[0]).value_or(""),
                                           std::move(external[1])};
  }
  OB_ASSIGN_OR_RETURN(bool contact, array(kTargetColCount + 3, 3, v));
  if (contact && t.contact_id) {
    const boost::json::array& a = v.get_array();
    snap.contact = core::ContactSnapshot{*t.contact_id, text(a[0]).value_or(""), text(a[1]),
                                         text(a[2]), std::move(external[2])};
  }
  return t;
}

}  // namespace

Result<std::optional<Target>> SqlTxn::MarkTarget(TenantId tenant, TargetId id,
                                                 std::string_view status, UnixMs now) {
  if (c_.dialect() != Dialect::kPostgres) {
    // In-process calls: the read and the write as they are. The writer keeps what it read of
    // the target (DirectoryCache::targets: two statements and the row's copy, about a tenth of
    // the writer's CPU per single publish, issue 8), dropped at every other change of the row or
    // of any external ids, and not kept while the transaction changed the directory.
    DirectoryCache* cache =
        directory_cache_ && !directory_cache_->tainted ? &*directory_cache_ : nullptr;
    std::optional<Target> t;
    if (cache != nullptr) {
      if (auto it = cache->targets.find({tenant.value, id.value}); it != cache->targets.end()) {
        t = it->second;
      }
    }
    if (!t) {
      OB_ASSIGN_OR_RETURN(t, GetTarget(tenant, id));
      if (!t) return t;
      if (cache != nullptr) {
        if (cache->Size() >= kDirectoryCacheEntries) cache->Clear();
        cache->targets.emplace(std::make_pair(tenant.value, id.value), *t);
      }
    }
    OB_ASSIGN_OR_RETURN(bool set, SetTargetStatus(tenant, id, status, now));
    if (!set) return std::optional<Target>();
    t->status = std::string(status);
    t->updated_at = now;
    return t;
  }
  // Two statements in one round trip: the UPDATE (it locks the row as GetTarget's FOR UPDATE
  // did), sent with Stmt::RunLater, then a SELECT of the target and of what the publish's
  // LoadSnapshot asks for next (OB_MARKED_SELECT). Not the UPDATE's RETURNING: a statement that
  // waited for the row's lock returns the row's newest version, but its subqueries read with the
  // snapshot taken before the wait, and would miss a location or external ids that the
  // transaction it waited for (an import of the target) added. The SELECT takes its snapshot
  // after the UPDATE.
  {
    OB_ASSIGN_OR_RETURN(Stmt u, c_.Prepare("UPDATE targets SET status = ?3, updated_at = ?4 WHERE "
                                           "id = ?1 AND tenant_id = ?2"));
    u.Bind(1, id.value).Bind(2, tenant.value).Bind(3, status).Bind(4, now);
    OB_RETURN_IF_ERROR(u.RunLater());
  }
  OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(OB_MARKED_SELECT "WHERE t.id = ?1 AND t.tenant_id = ?2"));
  s.Bind(1, id.value).Bind(2, tenant.value);
  BindMarkedKinds(s);
  OB_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<Target>();
  MarkedSnapshot marked;
  OB_ASSIGN_OR_RETURN(Target t, ReadMarked(s, marked.snapshot));
  marked.tenant = tenant.value;
  marked.target = t.id.value;
  marked.customer = t.customer_id;
  marked.location = t.location_id;
  marked.contact = t.contact_id;
  marked_ = std::move(marked);
  return std::optional<Target>(std::move(t));
}

Result<std::vector<std::optional<MarkedTarget>>> SqlTxn::MarkTargets(
    TenantId tenant, const std::vector<TargetMark>& marks, UnixMs now) {
  std::vector<std::optional<MarkedTarget>> out(marks.size());
  if (c_.dialect() != Dialect::kPostgres) {
    for (std::size_t i = 0; i < marks.size(); ++i) {
      OB_ASSIGN_OR_RETURN(std::optional<Target> t,
                          MarkTarget(tenant, marks[i].id, marks[i].status, now));
      if (!t) continue;
      OB_ASSIGN_OR_RETURN(core::TargetSnapshot snap, LoadSnapshot(tenant, *t));
      out[i] = MarkedTarget{std::move(*t), std::move(snap)};
    }
    return out;
  }
  // PostgreSQL: as MarkTarget, for all of them in one round trip (a batch of 500 events on 100
  // targets made 100 round trips, each holding the locks of the ones before it longer: issue 8,
  // `e2e_bench --batch --stores pg`). The rows are locked in id order, as the batches before
  // locked them one by one, so that two batches never wait for each other in a cycle; with the
  // lock an UPDATE takes (NO KEY UPDATE), which lets a row that refers to a target be inserted
  // meanwhile.
  marked_.reset();
  if (marks.empty()) return out;
  ArrayLiteral ids;
  ArrayLiteral statuses;
  std::unordered_map<std::int64_t, std::size_t> index;
  index.reserve(marks.size());
  for (std::size_t i = 0; i < marks.size(); ++i) {
    ids.Add(marks[i].id.value);
    statuses.Add(marks[i].status);
    index.emplace(marks[i].id.value, i);
  }
  const std::string id_text = ids.Take();
  {
    OB_ASSIGN_OR_RETURN(
        Stmt u, c_.Prepare("WITH locked AS MATERIALIZED (SELECT id FROM targets WHERE id = "
                           "ANY(?1::bigint[]) AND tenant_id = ?2 ORDER BY id FOR NO KEY UPDATE) "
                           "UPDATE "
                           "targets t SET status = v.status, updated_at = ?4 FROM locked l JOIN "
                           "unnest(?1::bigint[], ?3::text[]) AS v(id, status) ON v.id = l.id "
                           "WHERE t.id = l.id"));
    u.Bind(1, id_text).Bind(2, tenant.value).Bind(3, statuses.Take()).Bind(4, now);
    OB_RETURN_IF_ERROR(u.RunLater());
  }
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare(OB_MARKED_SELECT "WHERE t.id = ANY(?1::bigint[]) AND t.tenant_id = ?2"));
  s.Bind(1, id_text).Bind(2, tenant.value);
  BindMarkedKinds(s);
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    core::TargetSnapshot snap;
    OB_ASSIGN_OR_RETURN(Target t, ReadMarked(s, snap));
    auto it = index.find(t.id.value);
    if (it == index.end()) continue;
    snap.target_id = t.id.value;
    snap.external_ids = TargetIds(t);
    out[it->second] = MarkedTarget{std::move(t), std::move(snap)};
  }
  return out;
}

Result<Target> SqlTxn::InsertTarget(const Target& t) {
  ExternalIds ids = TargetIds(t);
  OB_RETURN_IF_ERROR(CheckExternalIds(t.tenant, EntityKind::kTarget, -1, ids));
  OB_ASSIGN_OR_RETURN(
      Stmt s, c_.Prepare("INSERT INTO targets(tenant_id, import_client_id, source_system, "
                         "external_id, customer_id, location_id, contact_id, title, description, "
                         "earliest_start, latest_end, duration_minutes, internal_notes, status, "
                         "cancel_reason, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                         "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) RETURNING id"));
  s.Bind(1, t.tenant.value)
      .Bind(2, t.import_client.value)
      .Bind(3, t.source_system)
      .Bind(4, t.external_id)
      .Bind(5, t.customer_id)
      .Bind(6, t.location_id)
      .Bind(7, t.contact_id)
      .Bind(8, t.title)
      .Bind(9, t.description)
      .Bind(10, t.earliest_start)
      .Bind(11, t.latest_end)
      .Bind(12, t.duration_minutes)
      .Bind(13, t.internal_notes)
      .Bind(14, t.status)
      .Bind(15, t.cancel_reason)
      .Bind(16, t.created_at)
      .Bind(17, t.updated_at);
  OB_ASSIGN_OR_RETURN(const std::int64_t new_id, InsertedId(s));
  Target out = t;
  out.id = TargetId(new_id);
  out.external_ids = std::move(ids);
  OB_RETURN_IF_ERROR(
      ReplaceExternalIds(t.tenant, EntityKind::kTarget, out.id.value, out.external_ids));
  return out;
}

Status SqlTxn::UpdateTarget(const Target& t) {
  marked_.reset();  // what MarkTarget read may change
  ExternalIds ids = TargetIds(t);
  OB_RETURN_IF_ERROR(CheckExternalIds(t.tenant, EntityKind::kTarget, t.id.value, ids));
  {
    OB_ASSIGN_OR_RETURN(
        Stmt s, c_.Prepare("UPDATE targets SET import_client_id = ?3, source_system = ?4, "
                           "external_id = ?5, customer_id = ?6, location_id = ?7, contact_id = ?8, "
                           "title = ?9, description = ?10, earliest_start = ?11, latest_end = "
                           "?12, duration_minutes = ?13, internal_notes = ?14, status = ?15, "
                           "cancel_reason = ?16, updated_at = ?17 WHERE id = ?1 AND tenant_id = "
                           "?2"));
    s.Bind(1, t.id.value)
        .Bind(2, t.tenant.value)
        .Bind(3, t.import_client.value)
        .Bind(4, t.source_system)
        .Bind(5, t.external_id)
        .Bind(6, t.customer_id)
        .Bind(7, t.location_id)
        .Bind(8, t.contact_id)
        .Bind(9, t.title)
        .Bind(10, t.description)
        .Bind(11, t.earliest_start)
        .Bind(12, t.latest_end)
        .Bind(13, t.duration_minutes)
        .Bind(14, t.internal_notes)
        .Bind(15, t.status)
        .Bind(16, t.cancel_reason)
        .Bind(17, t.updated_at);
    OB_RETURN_IF_ERROR(s.Run());
    if (c_.Changes() == 0) return Fail(core::Error::NotFound("target"));
  }
  return ReplaceExternalIds(t.tenant, EntityKind::kTarget, t.id.value, ids);
}

Result<std::optional<Target>> SqlTxn::GetTarget(TenantId tenant, TargetId id) {
  Target t;
  {
    // Locked in a shared database's write transaction: read, changed and written back whole.
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(ForUpdate("SELECT " OB_TARGET_COLS " FROM targets t "
                                                     "WHERE t.id = ?1 AND t.tenant_id = ?2")));
    s.Bind(1, id.value).Bind(2, tenant.value);
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::optional<Target>();
    t = ReadTarget(s);
  }
  OB_ASSIGN_OR_RETURN(t.external_ids, LoadExternalIds(tenant, EntityKind::kTarget, id.value));
  return std::optional<Target>(std::move(t));
}

Result<std::optional<Target>> SqlTxn::FindTargetByExternalId(TenantId tenant,
                                                             std::string_view source_system,
                                                             std::string_view external_id) {
  OB_ASSIGN_OR_RETURN(auto id,
                      FindByExternalId(tenant, EntityKind::kTarget, source_system, external_id));
  if (!id) return std::optional<Target>();
  return GetTarget(tenant, TargetId(*id));
}

Result<PageResult<Target>> SqlTxn::ListTargets(TenantId tenant, const TargetFilter& filter,
                                               const Page& page) {
  OB_ASSIGN_OR_RETURN(auto after, IdCursor(page));
  int limit = Limit(page);
  Params p;
  std::string sql = "SELECT " OB_TARGET_COLS " FROM targets t WHERE t.tenant_id = ";
  sql += p.Add(tenant.value);
  if (filter.external_id) {
    sql +=
        " AND t.id IN (SELECT x.entity_id FROM external_ids x WHERE x.tenant_id = t.tenant_id "
        "AND x.kind = 3 AND x.external_id = " +
        p.Add(*filter.external_id);
    if (filter.source_system) sql += " AND x.source_system = " + p.Add(*filter.source_system);
    sql += ")";
  } else if (filter.source_system) {
    sql +=
        " AND t.id IN (SELECT x.entity_id FROM external_ids x WHERE x.tenant_id = t.tenant_id "
        "AND x.kind = 3 AND x.source_system = " +
        p.Add(*filter.source_system) + ")";
  }
  if (filter.status) sql += " AND t.status = " + p.Add(*filter.status);
  if (after) sql += " AND t.id > " + p.Add(*after);
  sql += " ORDER BY t.id LIMIT " + p.Add(limit + 1);
  std::vector<Target> rows;
  {
    OB_ASSIGN_OR_RETURN(Stmt s, c_.Prepare(sql));
    p.BindTo(s);
    for (;;) {
      OB_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      rows.push_back(ReadTarget(s));
    }
  }
  auto result =
      Paginate(std::move(rows), limit, [](const Target& t) { return std::to_string(t.id.value); });
  for (auto& t : result.rows) {
    OB_ASSIGN_OR_RETURN(t.external_ids, LoadExternalIds(tenant, EntityKind::kTarget, t.id.value));
  }
  return result;
}

void SqlTxn::EnableDirectoryCache() { directory_cache_.emplace(); }

void SqlTxn::DirectoryTablesChanged() {
  marked_.reset();
  if (!directory_cache_) return;
  directory_cache_->Clear();
  directory_cache_->tainted = true;
}

void SqlTxn::TargetsChanged() {
  if (directory_cache_ && directory_cache_->targets_neutral) return;
  DirectoryTablesChanged();
}

namespace {
// The record at `key` of `records` (null: no cache), or load()'s, then remembered.
template <class Snapshot, class Load>
Result<std::optional<Snapshot>> Cached(
    std::map<DirectoryCache::Key, std::optional<Snapshot>>* records, DirectoryCache::Key key,
    Load load) {
  if (records != nullptr) {
    if (auto it = records->find(key); it != records->end()) return it->second;
  }
  OB_ASSIGN_OR_RETURN(std::optional<Snapshot> loaded, load());
  if (records != nullptr) records->emplace(key, loaded);
  return loaded;
}
}  // namespace

// PostgreSQL: the customer, location and contact and their external ids in one statement (a
// round trip) instead of six; the rows come in no set order. Each publish takes a snapshot, and
// on a shared database no process may remember records between transactions (another process
// may have changed them), so this is the whole of a publish's directory reads there.
Status SqlTxn::LoadDirectoryInOne(TenantId tenant, const Target& target,
                                  core::TargetSnapshot& snap) {
  OB_ASSIGN_OR_RETURN(
      Stmt s,
      c_.Prepare("SELECT 0, customer_number, name, NULL::text, NULL::text FROM customers WHERE "
                 "tenant_id = ?1 AND id = ?2 UNION ALL SELECT 1, name, NULL, NULL, NULL FROM "
                 "locations WHERE tenant_id = ?1 AND id = ?3 UNION ALL SELECT 2, display_name, "
                 "phone, email, NULL FROM contacts WHERE tenant_id = ?1 AND id = ?4 UNION ALL "
                 "SELECT 10 + kind, source_system, external_id, NULL, NULL FROM external_ids "
                 "WHERE tenant_id = ?1 AND ((kind = ?5 AND entity_id = ?2) OR (kind = ?6 AND "
                 "entity_id = ?3) OR (kind = ?7 AND entity_id = ?4))"));
  s.Bind(1, tenant.value);
  const std::optional<std::int64_t> ids[] = {
      target.customer_id != 0 ? std::optional<std::int64_t>(target.customer_id) : std::nullopt,
      target.location_id, target.contact_id};
  for (int i = 0; i < 3; ++i) {
    if (ids[i]) {
      s.Bind(i + 2, *ids[i]);
    } else {
      s.BindNull(i + 2, NullType::kInt);
    }
  }
  s.Bind(5, KindCode(EntityKind::kCustomer))
      .Bind(6, KindCode(EntityKind::kLocation))
      .Bind(7, KindCode(EntityKind::kContact));
  ExternalIds external[3];
  for (;;) {
    OB_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    const std::int64_t k = s.Int(0);
    if (k == 0) {
      snap.customer = core::CustomerSnapshot{*ids[0], s.Text(1), s.Text(2), {}};
    } else if (k == 1) {
      snap.location = core::LocationSnapshot{*ids[1], s.Text(1), {}};
    } else if (k == 2) {
      snap.contact = core::ContactSnapshot{*ids[2], s.Text(1), s.OptText(2), s.OptText(3), {}};
    } else if (k - 10 == KindCode(EntityKind::kCustomer)) {
      external[0].emplace(s.Text(1), s.Text(2));
    } else if (k - 10 == KindCode(EntityKind::kLocation)) {
      external[1].emplace(s.Text(1), s.Text(2));
    } else if (k - 10 == KindCode(EntityKind::kContact)) {
      external[2].emplace(s.Text(1), s.Text(2));
    }
  }
  if (snap.customer) snap.customer->external_ids = std::move(external[0]);
  if (snap.location) snap.location->external_ids = std::move(external[1]);
  if (snap.contact) snap.contact->external_ids = std::move(external[2]);
  return {};
}

Result<core::TargetSnapshot> SqlTxn::LoadSnapshot(TenantId tenant, const Target& target) {
  core::TargetSnapshot snap;
  if (target.id.value != 0) snap.target_id = target.id.value;
  snap.external_ids = TargetIds(target);
  if (c_.dialect() == Dialect::kPostgres && !directory_cache_) {
    // Read with the target by MarkTarget (a publish) just before, in this task: not again.
    if (marked_ && marked_->tenant == tenant.value && marked_->target == target.id.value &&
        marked_->customer == target.customer_id && marked_->location == target.location_id &&
        marked_->contact == target.contact_id) {
      snap.customer = std::move(marked_->snapshot.customer);
      snap.location = std::move(marked_->snapshot.location);
      snap.contact = std::move(marked_->snapshot.contact);
      marked_.reset();
      return snap;
    }
    OB_RETURN_IF_ERROR(LoadDirectoryInOne(tenant, target, snap));
    return snap;
  }
  // Not while the transaction has changed the directory: what it reads may still be undone.
  DirectoryCache* cache =
      directory_cache_ && !directory_cache_->tainted ? &*directory_cache_ : nullptr;
  if (cache != nullptr && cache->Size() >= kDirectoryCacheEntries) cache->Clear();
  if (target.customer_id != 0) {
    OB_ASSIGN_OR_RETURN(
        snap.customer,
        Cached(cache ? &cache->customers : nullptr, {tenant.value, target.customer_id},
               [&]() -> Result<std::optional<core::CustomerSnapshot>> {
                 OB_ASSIGN_OR_RETURN(auto c, GetCustomer(tenant, target.customer_id));
                 if (!c) return std::optional<core::CustomerSnapshot>();
                 return core::CustomerSnapshot{c->id, std::move(c->customer_number),
                                               std::move(c->name), std::move(c->external_ids)};
               }));
  }
  if (target.location_id) {
    OB_ASSIGN_OR_RETURN(
        snap.location,
        Cached(
            cache ? &cache->locations : nullptr, {tenant.value, *target.location_id},
            [&]() -> Result<std::optional<core::LocationSnapshot>> {
              OB_ASSIGN_OR_RETURN(auto l, GetLocation(tenant, *target.location_id));
              if (!l) return std::optional<core::LocationSnapshot>();
              return core::LocationSnapshot{l->id, std::move(l->name), std::move(l->external_ids)};
            }));
  }
  if (target.contact_id) {
    OB_ASSIGN_OR_RETURN(
        snap.contact, Cached(cache ? &cache->contacts : nullptr, {tenant.value, *target.contact_id},
                             [&]() -> Result<std::optional<core::ContactSnapshot>> {
                               OB_ASSIGN_OR_RETURN(auto c, GetContact(tenant, *target.contact_id));
                               if (!c) return std::optional<core::ContactSnapshot>();
                               return core::ContactSnapshot{
                                   c->id, std::move(c->display_name), std::move(c->phone),
                                   std::move(c->email), std::move(c->external_ids)};
                             }));
  }
  return snap;
}

}  // namespace outbound::store::sql
